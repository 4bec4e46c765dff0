"""The site's mirrors as (mirror URL prefix, canonical URL prefix) pairs: one table for both
readers of it. The hash maps a lock's URLs back through it (hashing/canonical.py), and the
env stage maps what the installers record in the image (conda-meta) back through it
(render/envinstall.py -> templates/install_env.py --canonical), so the image, like the hash,
does not depend on which mirror a site fetched from."""

from __future__ import annotations

from layerkit.spec import matchspec as M
from layerkit.spec.models import Mirrors

PYPI_INDEX = "https://pypi.org/simple"


def url_table(mirrors: Mirrors | None) -> tuple[tuple[str, str], ...]:
    """(mirror URL prefix, canonical URL prefix), longest prefix first; () without mirrors."""
    if mirrors is None:
        return ()
    pairs: list[tuple[str, str]] = []
    for key, url in (mirrors.channels or {}).items():
        first = M.channel_urls(key, None)[0]
        pairs.append((url.rstrip("/"), first if "://" in first else f"{M.CHANNEL_ALIAS}/{first}"))
    if mirrors.channel_alias:
        pairs.append((mirrors.channel_alias.rstrip("/"), M.CHANNEL_ALIAS))
    if mirrors.pypi_index:
        pairs.append((mirrors.pypi_index.rstrip("/"), PYPI_INDEX))
    return tuple(sorted(pairs, key=lambda p: -len(p[0])))


def unmirror(url: str, table: tuple[tuple[str, str], ...]) -> str:
    for prefix, canonical in table:
        if url == prefix or url.startswith(prefix + "/"):
            return canonical + url[len(prefix) :]
    return url
