"""Replace a file atomically: readers see the old content or the new, never a part."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text(target: Path, content: str, mode: int = 0o644) -> Path:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
