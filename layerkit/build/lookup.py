"""Where an environment's images live and whether they exist: names from the spec and
options (no I/O), registry lookups that degrade when a registry is down, and the
side-effect-free search `build` and `plan` share (workspace, local engine, global registries).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from layerkit.build.request import Target, name_tag, repository, targets
from layerkit.errors import RegistryError, RegistryUnreachable

# Whether an image may be reused: (its ref, the digest a registry gave for it, None for an
# image in the local engine only) -> yes/no. The digest is what a reuse then uses, so what the
# gate verified is what is used (signing.signature_gate under --require-signature).
Accept = Callable[[str, str | None], bool]

if TYPE_CHECKING:
    from layerkit.build.credentials import Credentials
    from layerkit.build.options import BuildOptions
    from layerkit.build.registry import RegistryClient
    from layerkit.pipeline import Rendered


class Registries:
    """Registry lookups that degrade to "unknown" (with one warning) when it is down."""

    def __init__(
        self,
        client: RegistryClient,
        warn: Callable[[str], None],
        hint: str = "",
        consequence: str = "building without its cache",
    ) -> None:
        self.client = client
        self._hint = hint
        self._consequence = consequence
        self.down: set[str] = set()
        self._warn = warn

    def exists(self, ref: str) -> bool:
        return self.digest(ref) is not None

    def digest(self, ref: str) -> str | None:
        """The manifest digest `ref` names now, None when it is missing (or its registry down).
        A registry that answers HEAD without a usable digest header is asked for the manifest,
        whose digest is then computed here."""
        from layerkit.build.registry import ImageRef, manifest_digest

        image = ImageRef.parse(ref)
        if image.registry in self.down:
            return None
        try:
            return manifest_digest(self.client, image)
        except RegistryUnreachable as exc:
            self.down.add(image.registry)
            self._warn(f"warning: {exc}; {self._consequence}")
            return None
        except RegistryError as exc:
            raise RegistryError(f"{exc}{self._hint}") from None


def credentials_lookup(
    spec_registry: object, workspace_host: str | None, base_registry: object = None
) -> Callable[[str], Credentials | None]:
    """Credentials by host: the workspace registry's variables, the base registry's
    (base.registry, where the base image is pulled from), else the docker config."""
    from layerkit.build.credentials import resolve_credentials
    from layerkit.spec.imageref import registry_of

    user_env = getattr(spec_registry, "username_env", None)
    pass_env = getattr(spec_registry, "password_env", None)
    base_address = getattr(base_registry, "address", None)
    base_host = registry_of(base_address) if base_address else None

    def lookup(host: str) -> Credentials | None:
        if host == workspace_host:
            return resolve_credentials(host, username_env=user_env, password_env=pass_env)
        if host == base_host:
            return resolve_credentials(
                host,
                username_env=getattr(base_registry, "username_env", None),
                password_env=getattr(base_registry, "password_env", None),
            )
        return resolve_credentials(host)

    return lookup


@dataclass(frozen=True)
class Layout:
    """Where an environment's images go: decided from the spec and options alone."""

    address: str | None  # workspace registry, None: images stay in the local engine
    targets: list[Target]  # the environment first, then its shared stages
    workspace_host: str | None
    globals: tuple[str, ...]  # `<global repo>:<hash>` refs looked up after the workspace
    hint: str  # names the credential variables in registry errors

    @property
    def main(self) -> Target:
        return self.targets[0]


def layout(rendered: Rendered, opts: BuildOptions) -> Layout:
    from layerkit.build.registry import ImageRef

    s = rendered.checked.resolved.spec
    reg = s.registry
    address = opts.registry or (reg.address if reg else None)
    repo_name = reg.repository if reg else None
    tags = list(opts.tags)
    auto_tag = name_tag(s.name, s.version) if opts.name_tag else None
    if auto_tag:
        tags.append(auto_tag)
    plan = targets(
        repository(address, repo_name), rendered.hash.hash, rendered.hash.stages, sorted(set(tags))
    )
    global_addrs = (reg.global_registries or ()) if reg else ()
    globals_ = tuple(f"{repository(g, repo_name)}:{plan[0].hash}" for g in global_addrs)
    hint = ""
    if reg and (reg.username_env or reg.password_env):
        hint = f" (credentials from ${reg.username_env} / ${reg.password_env})"
    host = ImageRef.parse(plan[0].ref).registry if address else None
    return Layout(address, plan, host, globals_, hint)


def credentials_for(rendered: Rendered, lay: Layout) -> Callable[[str], Credentials | None]:
    spec = rendered.checked.resolved.spec
    return credentials_lookup(spec.registry, lay.workspace_host, spec.base.registry if spec.base else None)


def registries_for(
    lay: Layout,
    creds: Callable[[str], Credentials | None],
    warn: Callable[[str], None],
    consequence: str = "building without its cache",
) -> Registries:
    from layerkit.build.registry import RegistryClient

    return Registries(RegistryClient(creds), warn, lay.hint, consequence)


def under(repo: str, lay: Layout) -> list[Target]:
    """The environment's targets (same hashes) under another repository: a global registry's."""
    return targets(repo, lay.main.hash, {t.stage: t.hash for t in lay.targets if t.stage})


@dataclass(frozen=True)
class Found:
    """Where the image for a hash is: `ref` (a tag) and the digest it named when it was looked
    up (and, under a gate, verified); reuse and copy act on the digests, never the tags again."""

    where: str  # "workspace", "engine" or "global"
    ref: str
    digest: str | None  # None: in the local engine only
    stage_digests: tuple[str, ...] = ()  # the stage images', in the layout's order


def _digests(registries: Registries, refs: list[str]) -> tuple[str, ...] | None:
    """Each ref's digest, or None as soon as one is missing."""
    found = []
    for ref in refs:
        digest = registries.digest(ref)
        if digest is None:
            return None
        found.append(digest)
    return tuple(found)


def find_existing(
    lay: Layout,
    registries: Registries,
    engine_addr: str | None,
    accept: Accept | None = None,
) -> Found | None:
    """Where the image for this hash already is (workspace, local engine or a global
    registry), without changing anything; None when nowhere.
    `accept(ref, digest)`: whether an image found may be reused (signing.signature_gate).

    In a registry an image counts only with every stage image beside it: one whose stage
    images are missing (a push that died between them, an older copy) is built again, which
    pushes them, instead of being found forever incomplete."""
    main = lay.main
    ok = accept or (lambda ref, digest: True)
    if lay.address:
        digests = _digests(registries, [t.ref for t in lay.targets])
        if digests is not None and ok(main.ref, digests[0]):
            return Found("workspace", main.ref, digests[0], digests[1:])
    if lay.address is None and _local_image(engine_addr, main.ref) and ok(main.ref, None):
        return Found("engine", main.ref, None)
    for ref in lay.globals:
        digests = _digests(registries, [t.ref for t in under(ref.rsplit(":", 1)[0], lay)])
        if digests is not None and ok(ref, digests[0]):
            return Found("global", ref, digests[0], digests[1:])
    return None


def _local_image(addr: str | None, ref: str) -> bool:
    from layerkit.build.transport import parse_address

    address = parse_address(addr)
    if address.kind != "docker":
        return False
    from layerkit.build.engine import Engine

    engine = Engine(address.target)
    try:
        return engine.image(ref) is not None
    finally:
        engine.close()
