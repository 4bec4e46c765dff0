"""Read conda explicit lock files (`@EXPLICIT` followed by package URLs)."""

from __future__ import annotations

import re
from pathlib import Path

from layerkit import inputs
from layerkit.errors import Position, SpecError
from layerkit.lock.model import Lock, LockedPackage
from layerkit.spec.matchspec import archive

# `${NAME}`/`$NAME`: a channel URL's variable, as conda-lock records it (never its value).
_URL = re.compile(
    r"(?:https?|file)://(?:[^\s#'\"\\`$]|\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*)+"
)

# What conda (>= 24.9) reads after a URL's `#`: an md5, or a sha256 with or without `sha256:`.
_CHECKSUM = re.compile(r"(?:sha256:)?([0-9a-f]{64})|([0-9a-f]{32})")


def parse_explicit(text: str, source: str, platform: str | None = None) -> Lock:
    """Parse an explicit file; the platform comes from its `# platform:` line if not given."""
    packages: list[LockedPackage] = []
    seen_marker = False
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = re.match(r"#\s*platform:\s*(\S+)", line)
            if m and platform is None:
                platform = m.group(1)
            continue
        if line == "@EXPLICIT":
            seen_marker = True
            continue
        if not seen_marker:
            raise SpecError(
                "not an explicit lock: '@EXPLICIT' must come before the URLs", Position(source, n, 1)
            )
        url, _, frag = line.partition("#")
        if not _URL.fullmatch(url):
            raise SpecError(f"not a package URL: {line[:80]!r}", Position(source, n, 1))
        package = archive(url)
        if package is None:
            raise SpecError("URL does not name a conda package archive", Position(source, n, 1))
        checksum = _CHECKSUM.fullmatch(frag)
        if frag and checksum is None:
            raise SpecError("bad checksum after '#'", Position(source, n, len(url) + 2))
        sha256, md5 = checksum.groups() if checksum else (None, None)
        packages.append(
            LockedPackage(
                manager="conda",
                platform=platform or "linux-64",
                name=package.name,
                version=package.version,
                build=package.build,
                url=url,
                sha256=sha256,
                md5=md5,
            )
        )
    if not seen_marker:
        raise SpecError("not an explicit lock: no '@EXPLICIT' line", Position(source, 1, 1))
    return Lock(source=source, packages=tuple(packages))


def read_explicit(path: Path) -> Lock:
    text = inputs.read_text(path, "lock", max_bytes=inputs.MAX_LOCK_BYTES)
    return parse_explicit(text, str(path))
