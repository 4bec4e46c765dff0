"""What a build adds beside the images it pushed (issue 15 §5): cosign signatures
(`build --sign KEY`) on the image and its stage images, and the SBOM made from the lock,
attached to the image. Runs after the push, so "found" keeps meaning "pushed complete";
an image left unsigned by a run that died here is built again under --require-signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from layerkit.errors import RegistryError

if TYPE_CHECKING:
    from layerkit.build.builder import BuildOptions, BuildResult
    from layerkit.pipeline import Rendered


def attest(rendered: Rendered, opts: BuildOptions, result: BuildResult, note: Callable[[str], None]) -> None:
    from layerkit.build.lookup import credentials_for, layout
    from layerkit.build.registry import RegistryClient
    from layerkit.build.signing import sign_pushed
    from layerkit.envs.sbom import attach_from_lock

    if not result.pushed or result.action == "found":
        if opts.sign_key and not result.pushed and result.action != "found":
            warning = f"warning: {result.image} is not signed: it was not pushed (--sign signs pushed images)"
            result.warnings.append(warning)
            note(warning)
        return  # nothing pushed by this run: nothing of ours to sign or describe
    creds = credentials_for(rendered, layout(rendered, opts))
    if opts.sign_key:
        refs = [result.image] + (sorted(result.stages.values()) if result.action == "built" else [])
        sign_pushed(refs, opts.sign_key, RegistryClient(creds), creds, note)
    lock = rendered.lock if rendered.plan.env_install and rendered.plan.env_install.locked else None
    try:
        attach_from_lock(lock, rendered.plan.platform, result.image, result.hash, creds, note)
    except RegistryError as exc:
        # The image is pushed and complete; only its description is missing.
        warning = f"warning: no SBOM attached to {result.image}: {exc.message}"
        result.warnings.append(warning)
        note(warning)
