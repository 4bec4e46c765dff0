"""Signed images (issue 15 §5): `build --sign KEY` signs what it pushes with cosign, and
`--require-signature PUBKEY` lets skip-by-hash and copy reuse an image only when cosign
verifies its signature. Otherwise the image is built again, with a warning saying why.

Always by digest, never by tag: a tag can move between the check and the use. No
transparency log (nothing leaves the registry: `--tlog-upload=false` to sign,
`--insecure-ignore-tlog` to verify); the key's password is cosign's own $COSIGN_PASSWORD,
never read here. Registry credentials reach cosign through a private DOCKER_CONFIG written
for the one call, never through its arguments. cosign is $LAYERKIT_COSIGN, else `cosign` on
PATH (scripts/services/cosign.sh fetches Debian 13's cosign 2.5).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from layerkit.errors import EnvironmentFailure, RegistryError, SpecError
from layerkit.spec.imageref import ImageRef, is_digest, is_loopback

if TYPE_CHECKING:
    from layerkit.build.credentials import Credentials
    from layerkit.build.lookup import Accept
    from layerkit.pipeline import Rendered

COSIGN_ENV = "LAYERKIT_COSIGN"
_TIMEOUT = 300.0
# cosign's exit codes for a verify that found no signature / none that matches the key.
_NO_SIGNATURES = 10
_NO_MATCHING_SIGNATURE = 12


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""  # why not: "unsigned", "bad signature (...)", "verify failed (...)"


def cosign_binary() -> str:
    exe = os.environ.get(COSIGN_ENV) or shutil.which("cosign")
    if not exe:
        raise EnvironmentFailure(
            f"signing needs cosign 2.x: put it on PATH or set ${COSIGN_ENV} "
            "(scripts/services/cosign.sh fetches Debian 13's)"
        )
    return exe


def check_key(key: str, what: str) -> None:
    """A key given as a file must be one; KMS and other `scheme://` keys are cosign's to check."""
    if "://" not in key and not Path(key).is_file():
        raise SpecError(f"{what} {key!r} is not a file")


def required_key(rendered: Rendered, option: str | None) -> str | None:
    """The public key reuse is gated on: --require-signature, else the spec's
    registry.require_signature (a file relative to the layer that sets it)."""
    if option:
        check_key(option, "--require-signature key")
        return option
    r = rendered.checked.resolved
    key = r.spec.registry.require_signature if r.spec.registry else None
    if not key:
        return None
    where = r.loc(("registry", "require_signature"))
    if "://" not in key and not Path(key).is_absolute():
        layer = next((lay for lay in reversed(r.layers) if lay.source == where.file), r.root)
        if layer.path is None:
            raise SpecError("registry.require_signature needs a spec file to be relative to", where)
        key = str(layer.path.parent / key)
    if "://" not in key and not Path(key).is_file():
        raise SpecError(f"registry.require_signature {key!r} is not a file", where)
    return key


def gate_for(
    rendered: Rendered,
    option: str | None,
    creds: Callable[[str], Credentials | None],
    warn: Callable[[str], None],
) -> Accept | None:
    """signature_gate for the key required (option or spec), None when none is."""
    key = required_key(rendered, option)
    return signature_gate(key, creds, warn) if key else None


def _registry_flags(host: str) -> list[str]:
    # Loopback registries speak plain HTTP, as layerkit's own client and dockerd assume.
    return ["--allow-http-registry", "--allow-insecure-registry"] if is_loopback(host) else []


@contextlib.contextmanager
def _environment(host: str, creds: Credentials | None) -> Iterator[dict[str, str]]:
    env = dict(os.environ)
    if creds is None:
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="layerkit-cosign-") as tmp:
        raw = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        path = Path(tmp) / "config.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps({"auths": {host: {"auth": raw}}}))
        env["DOCKER_CONFIG"] = tmp
        yield env


def _error_line(stderr: str) -> str:
    """cosign's own one-line reason (its last `Error:` line), control characters escaped."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln.removeprefix("Error:").strip() for ln in lines if ln.startswith("Error:")]
    text = (errors or lines or ["no message"])[-1]
    return text[:300].encode("unicode_escape").decode("ascii")


def _run(args: list[str], image: ImageRef, creds: Credentials | None) -> subprocess.CompletedProcess[str]:
    if not image.digest:
        raise AssertionError(f"cosign is only ever given digests, not {image}")
    cmd = [cosign_binary(), *args, *_registry_flags(image.registry), str(image)]
    with _environment(image.registry, creds) as env:
        try:
            return subprocess.run(
                cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=_TIMEOUT
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EnvironmentFailure(f"cosign ({cmd[0]}) failed to run: {exc}") from None


def sign(image: ImageRef, key: str, creds: Credentials | None) -> None:
    """Sign `image` (by digest) with `key`; the signature goes to its repository."""
    proc = _run(["sign", "--key", key, "--tlog-upload=false", "--yes"], image, creds)
    if proc.returncode != 0:
        raise RegistryError(f"cosign could not sign {image}: {_error_line(proc.stderr)}")


def verify(image: ImageRef, pubkey: str, creds: Credentials | None) -> Verdict:
    proc = _run(["verify", "--key", pubkey, "--insecure-ignore-tlog=true"], image, creds)
    if proc.returncode == 0:
        return Verdict(True)
    if proc.returncode == _NO_SIGNATURES:
        return Verdict(False, "unsigned")
    if proc.returncode == _NO_MATCHING_SIGNATURE:
        return Verdict(False, f"bad signature ({_error_line(proc.stderr)})")
    return Verdict(False, f"signature verify failed ({_error_line(proc.stderr)})")


def signature_gate(
    pubkey: str,
    creds: Callable[[str], Credentials | None],
    warn: Callable[[str], None],
) -> Accept:
    """The predicate find_existing and decide ask before they reuse an image: (ref, the digest
    the registry gave for it) -> whether that digest's signature verifies. The digest is what
    the reuse then uses (the Decision carries it), so a tag moved after this check changes
    nothing. Says why not once per image, as a warning."""
    verdicts: dict[str, Verdict] = {}  # by digest: build asks before and after its lock
    warned: set[str] = set()

    def refuse(ref: str, why: str) -> bool:
        message = f"warning: not reusing {ref}: {why}; building it again"
        if message not in warned:
            warned.add(message)
            warn(message)
        return False

    def accept(ref: str, digest: str | None) -> bool:
        if digest is None:
            return refuse(ref, "an image in the local engine only carries no signature to verify")
        if not is_digest(digest):
            return refuse(ref, "the registry gives no sha256 digest for it")
        image = ImageRef.parse(ref)
        by_digest = ImageRef(image.registry, image.repository, None, digest)
        key = str(by_digest)
        if key not in verdicts:
            verdicts[key] = verify(by_digest, pubkey, creds(image.registry))
        return True if verdicts[key].ok else refuse(ref, verdicts[key].reason)

    return accept


def sign_digests(
    images: list[ImageRef],
    key: str,
    creds: Callable[[str], Credentials | None],
    note: Callable[[str], None],
) -> list[str]:
    """Sign each image by the digest this run pushed (the exporter's or the push's answer),
    never by what a tag names now: a concurrent push would get the builder's signature."""
    signed = []
    for image in images:
        if not image.digest or not is_digest(image.digest):
            raise RegistryError(f"cannot sign {image}: the build gave no sha256 digest for it")
        by_digest = ImageRef(image.registry, image.repository, None, image.digest)
        note(f"signing {by_digest}")
        sign(by_digest, key, creds(image.registry))
        signed.append(str(by_digest))
    return signed
