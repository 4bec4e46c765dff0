"""The base image refs a build pulls, as the render plan names them (mirrors applied): what
`layerkit lock` pins by digest (lock/basepin.py) and `layerkit outdated` compares."""

from __future__ import annotations

from layerkit.render.renderplan import render_plan
from layerkit.spec.imageref import has_digest
from layerkit.spec.validate import Checked


def base_refs(checked: Checked) -> list[str]:
    """The FROM refs a build would pull (base, runtime, installer) that no digest pins yet (mirrors applied)."""
    if checked.resolved.spec.user_managed:
        return []
    plan = render_plan(checked, None)
    installer = plan.env_install.installer_ref if plan.env_install else None
    return sorted({r for r in (plan.base_ref, plan.runtime_ref, installer) if r and not has_digest(r)})
