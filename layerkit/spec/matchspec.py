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
    version: str | None  # without spaces, as conda keeps it: ">=3.8,<3.9", "=3.11", "!=3.9"
    channel: str | None  # a channel name ("pkgs/main") or URL, as written before `::`
    channel_is_url: bool
    rest: str | None  # the spec after `channel::`, as written; None when there is no `::`
    # Words in brackets without `=value` (pip-style extras, `nbconvert[execute]`): conda's
    # MatchSpec drops them (conda/models/match_spec.py _parse_spec_str, step 3).
    ignored: tuple[str, ...] = ()
    solver: str = ""  # the spec as layerkit hands it to solvers: `ignored` words removed


# Package names as conda and rattler accept them (exact names, no globs).
_NAME = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_.-]*)\s*(.*)", re.S)
# conda's version + build split (match_spec.py _parse_version_plus_build): the build is the
# last word after a space or `=` that no operator precedes; spaces in the version are dropped.
_VERSION_BUILD = re.compile(r"(.+?[^><!,|]?)(?:(?<![=!|,<>~])[ =]([^-=,|<>~]+?))?")
_ARCHIVE = re.compile(r"(?P<name>.+)-(?P<version>[^-]+)-(?P<build>[^-]+)\.(?:conda|tar\.bz2)")
_BRACKETS = re.compile(r"(.*)(\[.*\])(.*)", re.S)  # greedy: the last `[`, as conda's step 3
_BRACKET_ITEM = re.compile(
    r"\s*([A-Za-z0-9_-]+)\s*=\s*('[^']*'|\"[^\"]*\"|[^,\s\]]*)\s*,?|\s*([^,\s=]+)\s*,?"
)
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
    brackets, `channel[/subdir]::`, name, then version and build); raises ValueError. Pure
    Python, so `lock --check` and `check` load no solver; spec/grammar.py holds every spec to
    the solver's own parser where a full validation runs."""
    text = spec.split("#", 1)[0].strip()
    attrs: dict[str, str] = {}
    ignored: list[str] = []
    solver = spec.strip()
    m = _BRACKETS.fullmatch(text)
    if m:
        kept = []
        for item in _BRACKET_ITEM.finditer(m.group(2)[1:-1]):
            key, value, word = item.groups()
            if word:
                ignored.append(word)
            elif key:
                attrs[key.lower()] = value.strip("'\"").strip()
                kept.append(item.group(0).strip().rstrip(",").strip())
        text = (m.group(1) + m.group(3)).strip()
        if ignored:
            brackets = f"[{', '.join(kept)}]" if kept else ""
            solver = (m.group(1).rstrip() + brackets + m.group(3)).strip()
    channel, rest = None, None
    if "::" in text:
        channel, text = (part.strip() for part in text.rsplit("::", 1))
        parent, _, last = channel.rpartition("/")
        if parent and last in _SUBDIRS:
            channel = parent
        rest = solver.rsplit("::", 1)[1].strip()
    elif "channel" in attrs:
        channel = attrs["channel"]
    m = _NAME.fullmatch(text)
    if not m:
        raise ValueError("it does not start with a package name")
    after = m.group(2).strip()
    version = attrs.get("version")
    if version is None and after:
        vb = _VERSION_BUILD.fullmatch(after)
        version = (vb.group(1) if vb else after).replace(" ", "")
    return CondaSpec(
        name=m.group(1).lower(),
        version=version or None,
        channel=channel.rstrip("/") if channel else None,
        channel_is_url=bool(channel and "://" in channel),
        rest=rest,
        ignored=tuple(ignored),
        solver=solver,
    )


def problem(spec: str) -> str | None:
    """Why conda cannot read `spec` as a package spec (pure: names and shape only)."""
    if re.search(r"[\x00-\x1f\x7f]", spec):
        return "must be a single line without control characters"
    if spec != spec.strip() or not spec:
        return f"'{spec}' has spaces around it; write the spec alone"
    try:
        parse(spec)
    except ValueError as exc:
        return f"'{spec}' is not a conda package spec: {exc} (e.g. 'numpy>=1.26', 'python >=3.8,<3.9')"
    return None


def solver_form(spec: str) -> str:
    """The spec as solvers get it: conda's meaning, in a form py-rattler reads too."""
    try:
        return parse(spec).solver
    except ValueError:
        return spec


def name_of(spec: str) -> str | None:
    """Package name of a conda spec, or None when it does not parse."""
    try:
        return parse(spec).name
    except ValueError:
        return None


@dataclass(frozen=True)
class Archive:
    name: str
    version: str
    build: str


def archive(url: str) -> Archive | None:
    """A package archive's name, version and build, from its file name (a URL's last segment
    `name-version-build.conda` or `.tar.bz2`; the name may hold `-`, version and build not)."""
    m = _ARCHIVE.fullmatch(url.rsplit("/", 1)[-1])
    return Archive(m["name"], m["version"], m["build"]) if m else None


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


def added_channels(conda: Conda | None, mirrors: Mirrors | None = None) -> tuple[str, ...]:
    """Channels that channel-qualified specs name and `channels:` does not list, in spec order.

    conda adds them itself, after the listed channels, so at the lowest priority: the classic
    solver's Solver._prepare (conda/core/solve.py) appends each `spec.get_exact_value("channel")`
    not in self.channels; py-rattler adds none, so layerkit lists them for it."""
    listed = {_canonical(u) for e in channels_of(conda)[0] for u in channel_urls(e, mirrors)}
    out: list[str] = []
    for dep in (conda.dependencies or ()) if conda else ():
        try:
            channel = parse(dep).channel
        except ValueError:
            continue
        if channel is None or channel == NODEFAULTS:
            continue
        urls = {_canonical(u) for u in channel_urls(channel, mirrors)}
        if not urls <= listed and channel not in out:
            out.append(channel)
    return tuple(out)


def _canonical(url: str) -> str:
    """`name` and `<conda.anaconda.org>/name` are one channel; a default port is no port."""
    url = re.sub(r"^(https://[^/:]+):443(?=/|$)|^(http://[^/:]+):80(?=/|$)", r"\1\2", url.rstrip("/"))
    return url.removeprefix(CHANNEL_ALIAS + "/")


def resolved_channels(conda: Conda | None, mirrors: Mirrors | None) -> tuple[str, ...]:
    """Every channel URL (or alias-relative name), in priority order, mirrors applied: the
    listed channels, then those only channel-qualified specs name (added_channels)."""
    out: list[str] = []
    for entry in (*channels_of(conda)[0], *added_channels(conda, mirrors)):
        for url in channel_urls(entry, mirrors):
            if url not in out:
                out.append(url)
    return tuple(out)


def _channel_qualified(spec: str) -> CondaSpec | None:
    """The parsed spec when it names a channel (`chan::rest`), else None."""
    try:
        p = parse(spec)
    except ValueError:
        return None
    return p if p.channel is not None and p.rest is not None else None


def qualified(spec: str, mirrors: Mirrors | None) -> str:
    """`pkgs/main::numpy` with its channel as a URL on the right host (mirrors applied)."""
    p = _channel_qualified(spec)
    if p is None or p.channel is None or p.rest is None:
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
    p = _channel_qualified(spec)
    if p is None or p.channel is None or p.rest is None:
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
