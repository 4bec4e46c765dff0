"""The keys of a local deployment (`layerkit serve`): two files, `primary` and `secondary`.

They live in the user's state directory, never in layerkit's cache folder (a cache may be shared,
copied or wiped; it must never hold a secret): $XDG_STATE_HOME/layerkit/serve/NAME/keys,
$XDG_STATE_HOME defaulting to ~/.local/state as the XDG spec says.

The deployment's folder (NAME) is 0700: no other user of the host can reach the keys. The
keys folder below it and its files are world-readable on purpose: the engine bind-mounts that
folder into the container read-only, where the image's own user (any uid) must read them, and
the 0700 parent already shuts everyone else out on the host. A key is replaced by an atomic
rename, so the mounted folder shows the old key or the new one, never half of one.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from layerkit import atomic
from layerkit.errors import EnvironmentFailure

KeyName = Literal["primary", "secondary"]
KEY_NAMES: tuple[KeyName, ...] = ("primary", "secondary")
KEY_BYTES = 32  # token_urlsafe(32): 43 characters, 256 bits


def state_dir() -> Path:
    """layerkit's state directory: $XDG_STATE_HOME/layerkit, else ~/.local/state/layerkit."""
    base = os.environ.get("XDG_STATE_HOME") or ""
    # The XDG spec: a relative path in the variable is invalid and must be ignored.
    root = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "layerkit"


def deployment_dir(name: str) -> Path:
    return state_dir() / "serve" / name


def keys_dir(name: str) -> Path:
    return deployment_dir(name) / "keys"


@dataclass(frozen=True)
class Keys:
    folder: Path  # what the container mounts
    primary: str
    secondary: str

    def get(self, which: KeyName) -> str:
        return self.primary if which == "primary" else self.secondary


def _private_dir(path: Path) -> None:
    """``path`` and the folders layerkit creates above it, 0700; an existing one is tightened
    (it may predate us, made by a umask that lets others in)."""
    for folder in (state_dir(), state_dir() / "serve", path):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if folder.stat().st_mode & 0o077:
            folder.chmod(0o700)


def _new_key(other: str = "") -> str:
    """A fresh key unlike ``other`` even ignoring case (the two slots must stay two keys)."""
    while True:
        key = secrets.token_urlsafe(KEY_BYTES)
        if key.lower() != other.strip().lower():
            return key


def _current(folder: Path, which: KeyName) -> str:
    try:
        return (folder / which).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def ensure(name: str) -> Keys:
    """The deployment's keys, made on first use (a missing one is made, existing ones kept)."""
    _private_dir(deployment_dir(name))
    folder = keys_dir(name)
    folder.mkdir(mode=0o755, exist_ok=True)
    folder.chmod(0o755)
    for which, other in zip(KEY_NAMES, reversed(KEY_NAMES), strict=True):
        if not (folder / which).is_file():
            atomic.write_text(folder / which, _new_key(_current(folder, other)) + "\n", mode=0o644)
    return read(name)


def read(name: str) -> Keys:
    """The keys as they are; no deployment yet is an EnvironmentFailure saying how to make one."""
    folder = keys_dir(name)
    values: dict[KeyName, str] = {}
    for which in KEY_NAMES:
        try:
            values[which] = (folder / which).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise EnvironmentFailure(
                f"no keys for the deployment '{name}' in {folder}: `layerkit serve SPEC` makes them"
            ) from None
        if not values[which]:
            raise EnvironmentFailure(f"{folder / which} is empty: `layerkit serve regen-key {which} SPEC`")
    return Keys(folder, values["primary"], values["secondary"])


def regenerate(name: str, which: KeyName) -> Keys:
    """A new ``which`` key; the other one is kept, so clients can move over without a gap."""
    keys = read(name)  # the deployment's keys exist
    other = keys.secondary if which == "primary" else keys.primary
    atomic.write_text(keys_dir(name) / which, _new_key(other) + "\n", mode=0o644)
    return read(name)
