"""Text normalisation of a rendered build definition: what cannot change the image goes.

Comments (Dockerfile `#` lines but parser directives; `#` lines of the lock, requirements
and environment files) and blank Dockerfile lines; credentials: a URL's user info, and the
names of the build secrets (`${NAME}`, `id=NAME`, expand_secrets' arguments) become one
placeholder, so renaming or rotating a credential is the same image. Scripts (`.py`) stay
byte for byte: any change to code that runs in the build counts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_USERINFO = re.compile(r"(?<=://)[^/@\s\"']*@")
_DIRECTIVE = re.compile(r"#\s*(syntax|escape|check)\s*=", re.IGNORECASE)
_COMMENTED = (".lock", ".txt", ".yml", ".yaml")  # formats whose `#` lines are comments
SECRET = "LAYERKIT_SECRET"


def credentials(text: str, secrets: Iterable[str]) -> str:
    text = _USERINFO.sub("", text)
    for name in sorted(set(secrets), key=len, reverse=True):
        text = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", SECRET, text)
    return text


def _comment(line: str) -> bool:
    s = line.lstrip()
    return s.startswith("#") and not _DIRECTIVE.match(s)


def dockerfile(text: str, secrets: Iterable[str]) -> str:
    kept = [ln.rstrip() for ln in text.splitlines() if ln.strip() and not _comment(ln)]
    return credentials("\n".join(kept) + "\n", secrets)


def context_file(name: str, content: str, secrets: Iterable[str]) -> str:
    if not name.endswith(_COMMENTED):
        return content
    kept = [ln for ln in content.splitlines() if not _comment(ln)]
    return credentials("\n".join(kept) + "\n", secrets)
