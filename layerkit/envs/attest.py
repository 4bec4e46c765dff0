"""What a build adds beside the images it pushed (issue 15 §5): cosign signatures
(`build --sign KEY`) on the image and the stage images this run built, by the digests
its solves and pushes answered, and the SBOM made from the lock, attached to that digest.
An image copied from a global registry is not signed: this run did not build it. Runs after
the push, so "found" keeps meaning "pushed complete"; an image left unsigned by a run that
died here is built again under --require-signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from layerkit.errors import RegistryError
from layerkit.spec.imageref import ImageRef, is_digest

if TYPE_CHECKING:
    from layerkit.build.builder import BuildOptions, BuildResult
    from layerkit.pipeline import Rendered


def attest(rendered: Rendered, opts: BuildOptions, result: BuildResult, note: Callable[[str], None]) -> None:
    from layerkit.build.lookup import credentials_for, layout
    from layerkit.build.signing import sign_digests
    from layerkit.envs.sbom import attach_from_lock

    if not result.pushed or result.action == "found":
        if opts.sign_key and not result.pushed and result.action != "found":
            _warn(
                result,
                note,
                f"warning: {result.image} is not signed: it was not pushed (--sign signs pushed images)",
            )
        return  # nothing pushed by this run: nothing of ours to sign or describe
    creds = credentials_for(rendered, layout(rendered, opts))
    if opts.sign_key:
        if result.action == "built":
            # By the digests this run's solves and pushes answered, and only the images it
            # solved: a stage image that was already there is not this run's to vouch for.
            images = [_pinned(result.image, result.digest)] + [
                _pinned(result.stages[stage], digest)
                for stage, digest in sorted(result.stage_digests.items())
            ]
            sign_digests(images, opts.sign_key, creds, note)
        else:
            _warn(
                result, note, f"warning: {result.image} is not signed: it was copied, not built, by this run"
            )
    lock = rendered.lock if rendered.plan.env_install and rendered.plan.env_install.locked else None
    try:
        # To the digest pushed, not to whatever the tag names by now.
        image = (
            f"{result.image}@{result.digest}" if result.digest and is_digest(result.digest) else result.image
        )
        attach_from_lock(lock, rendered.plan.platform, image, result.hash, creds, note)
    except RegistryError as exc:
        # The image is pushed and complete; only its description is missing.
        _warn(result, note, f"warning: no SBOM attached to {result.image}: {exc.message}")


def _pinned(ref: str, digest: str | None) -> ImageRef:
    image = ImageRef.parse(ref)
    return ImageRef(image.registry, image.repository, image.tag, digest)


def sign_index(
    rendered: Rendered, opts: BuildOptions, result: BuildResult, note: Callable[[str], None]
) -> None:
    """`--sign` for a multi-platform spec: the image index this run put, by the digest the put
    answered (each platform's image was signed by its own build). Users pull the index by the
    name tag; `cosign verify` of that tag needs the index's own signature."""
    from layerkit.build.lookup import credentials_for, layout
    from layerkit.build.signing import sign_digests

    if not opts.sign_key or result.action == "found":
        return
    # As attest() for one image: an index over images this run neither built nor verified (a
    # copy from a global registry; one found without --require-signature) is not this run's
    # to vouch for.
    vouched = ("built", "found") if opts.require_signature else ("built",)
    not_built = sorted(p for p, r in result.platforms.items() if r.action not in vouched)
    if not result.pushed or not_built:
        why = (
            "it was not pushed"
            if not result.pushed
            else f"this run did not build (or verify) {', '.join(not_built)}"
        )
        _warn(result, note, f"warning: the index {result.image} is not signed: {why}")
        return
    sign_digests(
        [_pinned(result.image, result.digest)],
        opts.sign_key,
        credentials_for(rendered, layout(rendered, opts)),
        note,
    )


def _warn(result: BuildResult, note: Callable[[str], None], message: str) -> None:
    """Said now, and kept in the result (`build --json` warnings)."""
    result.warnings.append(message)
    note(message)
