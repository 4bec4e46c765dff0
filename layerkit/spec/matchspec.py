"""The one reader of conda package specs and channel names, as conda reads them.

Package specs are read as conda's MatchSpec parser reads them (tests hold this reader to
py-rattler's MatchSpec, the solver's), so `python!=3.9`, `python~=3.10` and
`python >=3.8,<3.9` all name `python`.

Channels (conda/base/constants.py, conda/base/context.py): `defaults` is the multichannel
DEFAULT_CHANNELS_UNIX (repo.anaconda.com pkgs/main and pkgs/r), never
`<channel_alias>/defaults`; its members and pkgs/pro are custom channels on
repo.anaconda.com; any other bare name is `<channel_alias>/<name>`. `nodefaults` is a marker
that `conda env create` (conda/env/installers/conda.py) and conda-lock both drop: it is
not a channel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from layerkit.spec.models import Conda, Mirrors

CHANNEL_ALIAS = "https://conda.anaconda.org"
DEFAULTS = "defaults"
NODEFAULTS = "nodefaults"
DEFAULT_CHANNELS = ("https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r")
# conda's custom channels on Linux: the members of `defaults` by name, and DEFAULT_CUSTOM_CHANNELS.
CUSTOM_CHANNELS = {
    "pkgs/main": DEFAULT_CHANNELS[0],
    "pkgs/r": DEFAULT_CHANNELS[1],
    "pkgs/pro": "https://repo.anaconda.com/pkgs/pro",
}


@dataclass(frozen=True)
class CondaSpec:
    """A parsed conda MatchSpec: what layerkit needs to know about it."""

    name: str  # normalized (lowercase)
    version: str | None  # as written, e.g. ">=3.8,<3.9", "=3.11", "!=3.9"
    channel: str | None  # a channel name ("pkgs/main") or URL, as written before `::`
    channel_is_url: bool
    rest: str | None  # the spec after `channel::`, as written; None when there is no `::`


# Package names as conda and rattler accept them (exact names, no globs).
_NAME = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_.-]*)\s*(.*)", re.S)
_SUBDIRS = {
    "noarch",
    "linux-64",
    "linux-aarch64",
    "linux-ppc64le",
    "linux-s390x",
    "osx-64",
    "osx-arm64",
    "win-64",
}


@lru_cache(maxsize=4096)
def parse(spec: str) -> CondaSpec:
    """Parse a conda MatchSpec the way conda's _parse_spec_str does (comment, `[key=value]`
    brackets, `channel[/subdir]::`, name, then version); raises ValueError. Pure Python,
    so validation and `lock --check` load no solver."""
    text = spec.split("#", 1)[0].strip()
    attrs: dict[str, str] = {}
    m = re.fullmatch(r"(.*?)\[(.*)\]", text, re.S)
    if m:
        text = m.group(1).strip()
        for key, value in re.findall(r"([A-Za-z_]+)\s*=\s*('[^']*'|\"[^\"]*\"|[^,\]]*)", m.group(2)):
            attrs[key.lower()] = value.strip("'\"").strip()
    channel, rest = None, None
    if "::" in text:
        channel, text = (part.strip() for part in text.rsplit("::", 1))
        parent, _, last = channel.rpartition("/")
        if parent and last in _SUBDIRS:
            channel = parent
        rest = spec.rsplit("::", 1)[1].strip()
    elif "channel" in attrs:
        channel = attrs["channel"]
    m = _NAME.fullmatch(text)
    if not m:
        raise ValueError("it does not start with a package name")
    after = m.group(2).strip()
    version = attrs.get("version") or (after.split()[0] if after else None)
    return CondaSpec(
        name=m.group(1).lower(),
        version=version or None,
        channel=channel.rstrip("/") if channel else None,
        channel_is_url=bool(channel and "://" in channel),
        rest=rest,
    )


def name_of(spec: str) -> str | None:
    """Package name of a conda spec, or None when it does not parse."""
    try:
        return parse(spec).name
    except ValueError:
        return None


def python_spec(deps: tuple[str, ...] | list[str]) -> str | None:
    """The first dependency that constrains Python, if any."""
    return next((d for d in deps if name_of(d) == "python"), None)


def channel_urls(channel: str, mirrors: Mirrors | None) -> tuple[str, ...]:
    """The channel URLs one `channels:` entry means, with the site's mirrors applied.

    Bare names other than conda's custom channels stay names when no channel_alias mirror is
    set (conda-lock resolves them against its own alias, conda.anaconda.org)."""
    mirrored = (mirrors.channels or {}) if mirrors else {}
    if channel in mirrored:
        return (mirrored[channel].rstrip("/"),)
    if channel == DEFAULTS:
        return tuple(mirrored.get(u, mirrored.get(_name(u), u)).rstrip("/") for u in DEFAULT_CHANNELS)
    if "://" in channel:
        return (channel.rstrip("/"),)
    if channel in CUSTOM_CHANNELS:
        url = CUSTOM_CHANNELS[channel]
        return (mirrored.get(url, url).rstrip("/"),)
    alias = mirrors.channel_alias if mirrors else None
    return (f"{alias.rstrip('/')}/{channel}",) if alias else (channel,)


def _name(url: str) -> str:
    return next((k for k, v in CUSTOM_CHANNELS.items() if v == url), url)


def channels_of(conda: Conda | None) -> tuple[tuple[str, ...], bool]:
    """The channel entries conda uses for a spec, and whether they were implied.

    `nodefaults` is dropped; no `channels:` at all means conda's default, `defaults`
    (the implicit default of conda up to 25.x, and what Miniconda's .condarc sets)."""
    written = conda.channels if conda else None
    if not written:  # absent or empty: conda env create appends context.channels
        return (DEFAULTS,), True
    return tuple(c for c in written if c != NODEFAULTS), False


def resolved_channels(conda: Conda | None, mirrors: Mirrors | None) -> tuple[str, ...]:
    """Every channel URL (or alias-relative name), in priority order, mirrors applied."""
    out: list[str] = []
    for entry in channels_of(conda)[0]:
        for url in channel_urls(entry, mirrors):
            if url not in out:
                out.append(url)
    return tuple(out)


def qualified(spec: str, mirrors: Mirrors | None) -> str:
    """`pkgs/main::numpy` with its channel as a URL on the right host (mirrors applied)."""
    try:
        p = parse(spec)
    except ValueError:
        return spec
    if p.channel is None or p.rest is None:
        return spec
    urls = channel_urls(p.channel, mirrors) if not p.channel_is_url else (p.channel,)
    url = urls[0]
    if "://" not in url:
        return spec  # a plain name: every solver resolves it the same way
    return f"{url}::{p.rest}"


def bind_channel(spec: str, urls: list[str]) -> str:
    """Point a channel-qualified spec at the channel it means among a solve's channel URLs.

    conda-lock rewrites `pkgs/main::x` and `https://repo.anaconda.com/pkgs/main::x` to
    `defaults::x`, and `https://host/path/chan::x` to `chan::x` (its vendored conda's
    Channel.canonical_name); rattler would read those names against conda.anaconda.org.
    `defaults` binds to the first of its members given (pkgs/main before pkgs/r)."""
    try:
        p = parse(spec)
    except ValueError:
        return spec
    if p.channel is None or p.rest is None:
        return spec
    given = [u.rstrip("/") for u in urls]
    if p.channel_is_url and p.channel in given:
        return spec
    name = p.channel.rstrip("/").rsplit("/", 1)[-1] if p.channel_is_url else p.channel
    tails = ("pkgs/main", "pkgs/r") if name == DEFAULTS else (name,)
    for url in given:
        if any(url == t or url.endswith("/" + t) for t in tails):
            return f"{url}::{p.rest}"
    return spec
