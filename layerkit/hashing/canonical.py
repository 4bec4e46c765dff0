"""The canonical inputs the hash renders from: what must not name another image taken out
before rendering, so the rendered build definition alone decides the hash (content.py).

Out: the spec's name, version and description (identity, not content), its mirrors (they
change where packages and bases come from, not what they are: a lock's URLs and base-image
pins are mapped back to their canonical source, or dropped where a checksum pins the file) and the spelling of pip project names
(PEP 503: one project). Dependency order needs nothing here: the rendered environment file
lists them sorted. Channel order stays: it is priority.
"""

from __future__ import annotations

from dataclasses import replace

from layerkit.lock.model import Lock, LockedPackage
from layerkit.render.baserefs import base_refs
from layerkit.spec import pip as P
from layerkit.spec.imageref import mirror
from layerkit.spec.mirrortable import unmirror, url_table
from layerkit.spec.validate import Checked

PINNED = "checksum-pinned:"  # stands for the URL of a file its checksum names


def canonical_checked(checked: Checked) -> Checked:
    spec = checked.resolved.spec
    update: dict[str, object] = {"name": None, "version": None, "description": None, "mirrors": None}
    if spec.conda is not None and spec.conda.pip:
        update["conda"] = spec.conda.model_copy(
            update={"pip": tuple(P.canonical(ln) for ln in spec.conda.pip)}
        )
    return replace(checked, resolved=replace(checked.resolved, spec=spec.model_copy(update=update)))


def canonical_lock(lock: Lock | None, checked: Checked, canonical: Checked) -> Lock | None:
    """The lock as if made without the site's mirrors. A package its checksum pins is that
    file wherever it is fetched from (the install verifies it): its URL becomes its file name
    alone, so a relock through a mirror or a token path names the same image. Other URLs move
    to their canonical channel or index; base-image pins go under the canonical refs."""
    if lock is None:
        return None
    mirrors = checked.resolved.spec.mirrors
    table = url_table(mirrors)
    packages = tuple(p.model_copy(update={"url": _canonical_url(p, table)}) for p in lock.packages)
    pins = dict(lock.base_digests)
    if mirrors and mirrors.base_registry and pins:
        for ref in base_refs(canonical):
            if (d := lock.base_digest(mirror(ref, mirrors.base_registry))) is not None:
                pins.setdefault(ref, d)
    return lock.model_copy(update={"packages": packages, "base_digests": tuple(sorted(pins.items()))})


def _canonical_url(p: LockedPackage, table: tuple[tuple[str, str], ...]) -> str:
    if p.sha256 or p.md5:
        return f"{PINNED}/{p.url.rsplit('/', 1)[-1]}"
    return unmirror(p.url, table)
