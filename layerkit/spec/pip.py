"""pip lines as users write them in a `pip:` list: requirements plus the index options that
change what gets installed (--index-url, --extra-index-url, --find-links, --pre).

Every line is classified here, once: an option, a requirement, or a refusal with its
reason. Credentials may only be `${NAME}` references in an index URL's user info: pip
expands `${NAME}` (upper case, digits, `_`) in requirements files, and conda-lock expands
them in `pip-repositories`, so the values stay in the environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from layerkit.spec.imageref import is_digest

# option -> (aliases, takes a value, may repeat)
OPTIONS = {
    "--index-url": (("-i", "--index-url"), True, False),
    "--extra-index-url": (("--extra-index-url",), True, True),
    "--find-links": (("-f", "--find-links"), True, True),
    "--pre": (("--pre",), False, False),
}
_ALIASES = {alias: name for name, (aliases, _, _) in OPTIONS.items() for alias in aliases}
ENV_REF = r"\$\{[A-Z0-9_]+\}"
# https://[${USER}[:${PASSWORD}]@]host[:port][/path]: no literal credentials, no `$` elsewhere
INDEX_URL = re.compile(
    rf"https?://(?:{ENV_REF}(?::{ENV_REF})?@)?[A-Za-z0-9.-]+(?::[0-9]{{1,5}})?(?:/[A-Za-z0-9._~%+=,:/-]*)?"
)
_VCS = ("git+", "hg+", "svn+", "bzr+")
_COMMIT = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
_HASH = re.compile(r"\s+--hash[=\s]\s*(\S+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class PipOptions:
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    pre: bool = False

    def lines(self) -> tuple[str, ...]:
        """As requirements-file lines (pip expands `${NAME}` there, not on its command line)."""
        out = [f"--index-url {self.index_url}"] if self.index_url else []
        out += [f"--extra-index-url {u}" for u in self.extra_index_urls]
        out += [f"--find-links {u}" for u in self.find_links]
        return (*out, *(("--pre",) if self.pre else ()))

    def env_names(self) -> tuple[str, ...]:
        urls = [u for u in (self.index_url, *self.extra_index_urls, *self.find_links) if u]
        return tuple(sorted({n for u in urls for n in re.findall(r"\$\{([A-Z0-9_]+)\}", u)}))


@dataclass(frozen=True)
class PipSection:
    requirements: tuple[str, ...]
    options: PipOptions


def option(line: str) -> tuple[str, str | None] | None:
    """(canonical option, value) for an option line, or None for a requirement line."""
    text = line.strip()
    if not text.startswith("-"):
        return None
    head, *tail = text.split(None, 1)
    rest = tail[0] if tail else ""
    if head.startswith("--") and "=" in head:
        word, value = head.split("=", 1)
        value = f"{value} {rest}".strip()
    elif not head.startswith("--") and len(head) > 2:
        word, value = head[:2], f"{head[2:]} {rest}".strip()  # -ihttps://… (pip allows it)
    else:
        word, value = head, rest.strip()
    return _ALIASES.get(word, word), value or None


def problem(line: str) -> str | None:
    """Why a `pip:` line cannot be used, or None when it is fine."""
    if _CONTROL.search(line):
        return "must be a single line without control characters"
    opt = option(line)
    if opt is not None:
        return _option_problem(line, *opt)
    return _requirement_problem(line)


def _option_problem(line: str, name: str, value: str | None) -> str | None:
    if name in ("-e", "--editable"):
        return (
            f"'{line}': editable installs (-e) link to a source tree that is not in the image "
            "and cannot be locked; build a wheel and use 'name @ https://…/x.whl', or publish it to an index"
        )
    if name in ("-r", "--requirement", "-c", "--constraint"):
        return f"'{line}': other requirements files are not read; list their lines here instead"
    if name not in OPTIONS:
        return (
            f"'{line}': the pip option '{name}' is not supported; layerkit locks and hashes only "
            f"{', '.join(OPTIONS)}"
        )
    _, takes_value, _ = OPTIONS[name]
    if not takes_value:
        return None if value is None else f"'{line}': {name} takes no value"
    if value is None:
        return f"'{line}': {name} needs a URL"
    if value.startswith(("file:", "/", ".", "~")):
        return (
            f"'{line}': a local {name} is not part of the build context and cannot be locked; "
            "serve it over https"
        )
    if re.match(r"https?://[^/@]*@", value) and not INDEX_URL.fullmatch(value):
        return (
            f"'{line}': credentials must come from environment variables, never the spec: "
            "write https://${USER_VAR}:${TOKEN_VAR}@host/… (upper-case names)"
        )
    if not INDEX_URL.fullmatch(value):
        return f"'{line}': {name} must be an http(s) URL of [A-Za-z0-9._~%+=,:/-] (credentials only as ${{NAME}})"
    return None


def split_hashes(line: str) -> tuple[str, tuple[str, ...]]:
    """A requirement line's requirement and its per-line `--hash=algo:hex` options."""
    hashes = tuple(_HASH.findall(line))
    return _HASH.sub("", line).strip(), hashes


def vcs_ref(url: str) -> str | None:
    """The `@ref` of a VCS URL (conda-lock's unpack_git_url), after any `user@` of the host."""
    rest = url.split("#", 1)[0].split("://", 1)[-1]
    path = rest.split("/", 1)[1] if "/" in rest else ""
    return path.rsplit("@", 1)[1] or None if "@" in path else None


def vcs_name(url: str) -> str:
    """The name conda-lock gives a bare VCS URL: its repository's, without `@ref` and `.git`
    (conda_lock/src_parser/pyproject_toml.py parse_requirement_specifier)."""
    return url.split("#", 1)[0].rstrip("/").split("/")[-1].split("@")[0].removesuffix(".git")


def _requirement_problem(line: str) -> str | None:
    from packaging.requirements import InvalidRequirement, Requirement

    text, hashes = split_hashes(line)
    if problem := _hash_problem(line, text, hashes):
        return problem
    url = text.split("@", 1)[1].strip() if "@" in text and not text.startswith(_VCS) else text
    if url.startswith(_VCS):
        # conda-lock locks the commit a tag or branch names (Poetry's resolved reference);
        # without a ref there is nothing to lock but the default branch of the day.
        if vcs_ref(url) is None:
            return (
                f"'{line}': a VCS URL without a ref installs whatever the default branch holds at "
                "build time; pin a tag or a commit: 'git+https://host/repo.git@v1.2'"
            )
        if re.match(r"[a-z+]+://[^/@]*@", url) and not url.startswith(("git+ssh://git@", "git+git@")):
            return f"'{line}': a VCS URL must not carry credentials"
        if text.startswith(_VCS):
            return None  # pip reads a bare VCS line; conda-lock names it by its repository
    # pip reads a line with a path separator and no scheme as a path (its _looks_like_path).
    path_like = "/" in text and "://" not in text and "@" not in text
    if (
        path_like
        or url.startswith(("file:", "/", ".", "~"))
        or re.fullmatch(r"[^:@]+\.(?:whl|tar\.gz|zip)", text)
    ):
        return (
            f"'{line}': a local path is not part of the build context and cannot be locked or hashed; "
            "publish it to an index or reference it as 'name @ https://…/x.whl'"
        )
    if re.match(r"[a-z]+://", text):
        return f"'{line}': a bare URL names no package to lock; write 'name @ {text}'"
    try:
        req = Requirement(text)
    except InvalidRequirement as exc:
        return f"'{line}' is not a valid pip requirement: {str(exc).splitlines()[0]}"
    if req.url and re.match(r"[a-z+]+://[^/@]*@", req.url):
        return f"'{line}': a direct URL must not carry credentials; serve it from an index"
    if hashes and not (len(req.specifier) == 1 and next(iter(req.specifier)).operator in ("==", "===")):
        return f"'{line}': pip checks a --hash only on a requirement pinned with '==' (e.g. 'name==1.0 --hash=…')"
    return None


def _hash_problem(line: str, text: str, hashes: tuple[str, ...]) -> str | None:
    if "--hash" in text:
        return f"'{line}': write the hash as '--hash=sha256:<64 hex digits>'"
    if len(hashes) > 1:
        # conda_lock/src_parser/pyproject_toml.py RequirementWithHash splits on one ' --hash='.
        return f"'{line}': conda-lock reads one --hash per line; keep the sha256 of the file you install"
    if hashes and not is_digest(hashes[0]):
        return f"'{line}': the hash must be 'sha256:' and 64 hex digits (the lock records sha256)"
    return None


def normalized(line: str) -> str:
    """A requirement as conda-lock and pip read it: one space before a single `--hash=`."""
    text, hashes = split_hashes(line)
    return " ".join((text, *(f"--hash={h}" for h in hashes)))


def line_key(line: str) -> str:
    """Merge key: a requirement's project name; a single-valued option's name (a later
    layer's --index-url replaces an earlier one); a repeatable option with its value."""
    opt = option(line)
    if opt is not None:
        name, value = opt
        return name if name in OPTIONS and not OPTIONS[name][2] else f"{name} {value or ''}".strip()
    if line.strip().startswith(_VCS):
        return _pep503(vcs_name(line.strip()))
    return project_name(line) or line.strip()


# A project name where a requirement starts: followed by its end, extras, a version, a marker
# or `@ URL`; anything else (`name/path`, `https:`) is a path or a URL, not a name.
_NAMED = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?=$|[\s\[<>=!~;@(])")


def _pep503(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _named(line: str) -> re.Match[str] | None:
    m = _NAMED.match(line)
    return None if m is None or "://" in line.split("@", 1)[0] else m


def project_name(line: str) -> str | None:
    """The PEP 503-normalised project a requirement line names (`Foo_Bar[x]>=1` -> `foo-bar`);
    None for an option, a VCS or bare URL, or a path."""
    m = _named(line)
    return _pep503(m.group(1)) if m else None


def canonical(line: str) -> str:
    """A requirement as hashed and compared: its project name PEP 503-normalised (case and
    runs of `-_.` do not name another project); the rest, URLs and versions, as written."""
    text = normalized(line)
    m = _named(text)
    if option(text) is not None or text.startswith(_VCS) or m is None:
        return text
    return text[: m.start(1)] + _pep503(m.group(1)) + text[m.end(1) :]


def section(lines: tuple[str, ...] | None) -> PipSection:
    """Split checked `pip:` lines into requirements and options."""
    reqs: list[str] = []
    index: str | None = None
    extra: list[str] = []
    links: list[str] = []
    pre = False
    for line in lines or ():
        opt = option(line)
        if opt is None:
            reqs.append(normalized(line))
            continue
        name, value = opt
        if name == "--index-url":
            index = value
        elif name == "--extra-index-url" and value and value not in extra:
            extra.append(value)
        elif name == "--find-links" and value and value not in links:
            links.append(value)
        elif name == "--pre":
            pre = True
    return PipSection(tuple(reqs), PipOptions(index, tuple(extra), tuple(links), pre))


def is_pinned(line: str) -> bool:
    from packaging.requirements import Requirement

    if option(line) is not None:
        return True
    text = split_hashes(line)[0]
    url = text if text.startswith(_VCS) else text.split("@", 1)[1].strip() if "@" in text else ""
    if url.startswith(_VCS):  # a tag or branch moves until the lock pins its commit
        return bool(_COMMIT.fullmatch(vcs_ref(url) or ""))
    try:
        req = Requirement(text)
    except Exception:
        return False
    return req.url is not None or any(s.operator in ("==", "===") for s in req.specifier)
