"""``layerkit verify``: build the image again from scratch and compare it with the one `build`
pushed (issue 18).

What is compared: the manifest at ``<repo>:<hash>`` in the workspace registry, the image
`build` pushed and every user pulls (a hash tag names one environment; `build` warns when it
moves, see builder.py). Not the env record: it holds a digest only for environments registered
after their build, and the registry is where a mismatch would matter.

How the second image is made: one solve of the Dockerfile, as `build` makes it, with BuildKit's
``no-cache`` for every step, no cache import or export, SOURCE_DATE_EPOCH and
rewrite-timestamp, pushed by the image exporter to the scratch repository
``<repo>-verify:<hash>`` (left there: a mismatch can be looked into with any registry tool).
The solve's answer is the rebuilt manifest's digest. On a mismatch, both images are read back
through layerkit's registry client: manifests, configs (rootfs.diff_ids and history) and the
first differing layer of each, streamed (layerdiff.py). Engines without the image exporter
(dockerd's classic image store) cannot make reproducible images and are refused.

A multi-platform spec: every platform is rebuilt and compared, then the index layerkit would
put over the rebuilt images (its bytes are a function of its entries) against the recorded one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from layerkit.build.layerdiff import (
    Finding,
    config_diff,
    diff_ids,
    first_file_diff,
    first_layer_diff,
    layer_instructions,
    listing,
)
from layerkit.errors import DaemonError, EnvironmentFailure

if TYPE_CHECKING:
    from layerkit.build.client import BuildkitClient
    from layerkit.build.credentials import Credentials
    from layerkit.build.options import BuildOptions
    from layerkit.build.progress import Progress
    from layerkit.build.registry import ImageRef, RegistryClient
    from layerkit.pipeline import Rendered

VERIFY_SCHEMA = "layerkit.verify/1"
SCRATCH_SUFFIX = "-verify"
NOT_REPRODUCIBLE = (
    "this engine cannot build reproducible images: reproducibility needs dockerd 24+ with the "
    "containerd image store or buildkitd (BuildKit 0.13+, the image exporter)"
)


@dataclass(frozen=True)
class PlatformCheck:
    platform: str
    hash: str
    image: str  # <repo>:<hash>, what build pushed
    recorded: str
    rebuilt: str
    rebuilt_image: str  # <repo>-verify:<hash>
    findings: tuple[Finding, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "platform": self.platform,
            "hash": self.hash,
            "image": self.image,
            "recorded_digest": self.recorded,
            "rebuilt_digest": self.rebuilt,
            "rebuilt_image": self.rebuilt_image,
            "same": self.recorded == self.rebuilt,
            "findings": [f.to_json() for f in self.findings],
        }


@dataclass(frozen=True)
class VerifyResult:
    hash: str  # the image's (one platform) or the index's
    image: str
    recorded: str
    rebuilt: str
    platforms: tuple[PlatformCheck, ...]
    index_findings: tuple[Finding, ...] = ()

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for p in self.platforms for f in p.findings) + self.index_findings

    @property
    def ok(self) -> bool:
        return self.recorded == self.rebuilt and not self.findings

    def to_json(self) -> dict[str, object]:
        return {
            "schema": VERIFY_SCHEMA,
            "hash": self.hash,
            "image": self.image,
            "recorded_digest": self.recorded,
            "rebuilt_digest": self.rebuilt,
            "same": self.ok,
            "platforms": [p.to_json() for p in self.platforms],
            "findings": [f.to_json() for f in self.findings],
        }


def recorded_digest(client: RegistryClient, ref: str) -> str:
    """The digest `ref` names in the registry; EnvironmentFailure (exit 3) when it names none."""
    from layerkit.build.registry import ImageRef, manifest_digest

    digest = manifest_digest(client, ImageRef.parse(ref))
    if digest is None:
        raise EnvironmentFailure(
            f"nothing to verify: {ref} is not in the registry (`layerkit build` pushes it)"
        )
    return digest


def rebuild(
    client: BuildkitClient,
    epoch: int,
    rendered: Rendered,
    image: str,
    opts: BuildOptions,
    creds: Callable[[str], Credentials | None],
    progress: Progress,
) -> str:
    """Solve the render with no cache at all and push it to ``image``; its manifest digest."""
    from layerkit.build.builder import solve_inputs
    from layerkit.build.context import BuildContext
    from layerkit.build.request import Target, solve_args

    repo, _, tag = image.rpartition(":")
    files, modes, secrets = solve_inputs(rendered)
    args = solve_args(
        Target(None, tag, repo), embedded=False, cache_from=(), network=opts.network, push=True,
        platform=rendered.plan.platform, epoch=epoch,
    )  # fmt: skip
    attrs = {**args.frontend_attrs, "no-cache": ""}  # "": every stage's every step
    with BuildContext(client, files, creds, modes=modes, secrets=secrets) as ctx:
        progress.phase(f"verify {rendered.plan.platform}")
        res = client.solve(
            frontend="dockerfile.v0", frontend_attrs=attrs, frontend_inputs=ctx.inputs,
            session=ctx.session_id, exporter=args.exporter, exporter_attrs=args.exporter_attrs,
            cache_imports=(), cache_exports=(), entitlements=args.entitlements, on_status=progress,
            masked=secrets,
        )  # fmt: skip
    digest = dict(res.exporter_response).get("containerimage.digest")
    if not digest:
        raise DaemonError(f"the engine pushed {image} without saying its digest")
    return digest


def reproducible_engine(client: BuildkitClient) -> int:
    """The epoch this engine's reproducible builds get; DaemonError where it has none."""
    from layerkit.build.request import reproducible_epoch

    caps = client.capabilities()
    epoch = reproducible_epoch(caps.exporters, caps.version)
    if epoch is None or not caps.copy_link:
        raise DaemonError(NOT_REPRODUCIBLE)
    return epoch


def _image(
    client: RegistryClient, ref: str, digest: str, platform: str
) -> tuple[ImageRef, dict[str, Any], dict[str, Any]]:
    """(where, manifest, config) of one platform's image manifest (an index's child if BuildKit
    pushed attestations beside it)."""
    from layerkit.build.multiplatform import descriptor
    from layerkit.build.registry import ImageRef, json_object

    entry = descriptor(client, ref, digest, platform)
    at = ImageRef.parse(ref)
    where = ImageRef(at.registry, at.repository, None, entry.digest)
    data, _, _ = client.get_manifest(where)
    manifest = json_object(data, f"manifest of {ref}")
    config_digest = str((manifest.get("config") or {}).get("digest") or "")
    config = json_object(client.config_blob(where, config_digest), f"config of {ref}")
    return where, manifest, config


def _layers(manifest: dict[str, Any]) -> list[str]:
    return [str(layer.get("digest")) for layer in manifest.get("layers") or [] if isinstance(layer, dict)]


def compare(
    client: RegistryClient, platform: str, recorded: tuple[str, str], rebuilt: tuple[str, str]
) -> list[Finding]:
    """Why two images (ref, digest) differ: the first differing layer and file in it, or the
    config fields, or the compression. Empty when the digests are the same."""
    if recorded[1] == rebuilt[1]:
        return []
    at_a, man_a, cfg_a = _image(client, *recorded, platform)
    at_b, man_b, cfg_b = _image(client, *rebuilt, platform)
    ids_a, ids_b = diff_ids(cfg_a), diff_ids(cfg_b)
    made = layer_instructions(cfg_a) or layer_instructions(cfg_b)
    i = first_layer_diff(ids_a, ids_b)
    if i is None:
        blobs = [
            n + 1 for n, (a, b) in enumerate(zip(_layers(man_a), _layers(man_b), strict=False)) if a != b
        ]
        if blobs:
            what = "the same files, compressed differently"
            return [Finding(platform, blobs[0], _at(made, blobs[0] - 1), None, what)]
        fields = config_diff(cfg_a, cfg_b)
        detail = (
            f"image config differs ({', '.join(fields)})"
            if fields
            else "manifest differs (same layers and config)"
        )
        return [Finding(platform, None, "", None, detail)]
    instruction = _at(made, i)
    if i >= len(ids_a) or i >= len(ids_b):
        side = "recorded" if i < len(ids_a) else "rebuilt"
        return [Finding(platform, i + 1, instruction, None, f"only the {side} image has this layer")]
    lists = []
    for at, manifest in ((at_a, man_a), (at_b, man_b)):
        digest = _layers(manifest)[i]
        with client.open_blob(at, digest) as stream:
            lists.append(listing(stream, f"layer {digest[:19]} of {at.repository}"))
    diff = first_file_diff(lists[0], lists[1])
    detail = "" if diff else "the same files and metadata, in another tar encoding"
    return [Finding(platform, i + 1, instruction, diff, detail)]


def _at(made: Sequence[str], i: int) -> str:
    return made[i] if 0 <= i < len(made) else ""


def index_finding(recorded: str, entries_digest: str, ref: str) -> Finding | None:
    if recorded == entries_digest:
        return None
    return Finding("index", None, "", None, f"{ref}: recorded {recorded}, rebuilt {entries_digest}")


def dumps(result: VerifyResult) -> str:
    return json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n"


def verify(
    renders: Sequence[Rendered], opts: BuildOptions, progress: Progress, *, index: bool
) -> VerifyResult:
    """Rebuild each render from scratch and compare it with what its hash tag names; with
    ``index`` (a multi-platform spec, every platform), the image index too."""
    from layerkit.build.client import BuildkitClient
    from layerkit.build.index import document
    from layerkit.build.lookup import credentials_for, layout
    from layerkit.build.multiplatform import descriptor, index_layout, platform_options
    from layerkit.build.registry import RegistryClient, sha256_digest
    from layerkit.pipeline import renders_index_hash

    first = renders[0]
    popts = platform_options(opts) if index else opts
    lay = layout(first, popts)
    if lay.address is None:
        raise EnvironmentFailure(
            "nothing to verify: `verify` compares with the image `build` pushed to a registry, and this "
            "spec has none (set registry.address or --registry)"
        )
    creds = credentials_for(first, lay)
    client = RegistryClient(creds)
    checks = []
    ihash = renders_index_hash(renders) if index else ""
    ilay = index_layout(first, ihash, opts) if index else None
    with BuildkitClient(opts.addr, tls=opts.tls) as buildkit:
        epoch = reproducible_engine(buildkit)  # refused before anything is looked up or built
        # Every recorded digest before the first rebuild: nothing to compare with must not
        # come out only after hours of no-cache builds.
        index_recorded = recorded_digest(client, ilay.ref) if ilay is not None else None
        mains = [layout(r, popts).main for r in renders]
        recorded_of = [recorded_digest(client, main.ref) for main in mains]
        for r, main, recorded in zip(renders, mains, recorded_of, strict=True):
            scratch = f"{main.repo}{SCRATCH_SUFFIX}:{main.hash}"
            progress.message(f"{r.plan.platform}: rebuilding {main.ref} with no cache, as {scratch}")
            rebuilt = rebuild(buildkit, epoch, r, scratch, opts, creds, progress)
            found = compare(client, r.plan.platform, (main.ref, recorded), (scratch, rebuilt))
            checks.append(
                PlatformCheck(r.plan.platform, main.hash, main.ref, recorded, rebuilt, scratch, tuple(found))
            )
    if not index:
        c = checks[0]
        return VerifyResult(c.hash, c.image, c.recorded, c.rebuilt, (c,))
    assert ilay is not None and index_recorded is not None
    recorded = index_recorded
    entries = [descriptor(client, c.rebuilt_image, c.rebuilt, c.platform) for c in checks]
    rebuilt = sha256_digest(document(entries, ihash))
    # A platform that differs explains the index's difference: only an index alone is named.
    idx = None if any(c.findings for c in checks) else index_finding(recorded, rebuilt, ilay.ref)
    return VerifyResult(ihash, ilay.ref, recorded, rebuilt, tuple(checks), (idx,) if idx else ())
