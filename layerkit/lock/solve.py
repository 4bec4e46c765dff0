"""`layerkit lock`: resolve a checked spec with conda-lock into `<stem>.conda-lock.yml`.

conda-lock does the locking; layerkit prepares its inputs (environment file with mirrors
applied, virtual packages from the spec's CUDA version and the base's glibc, the solver
executable) and writes results atomically. The lock records a hash of exactly those
inputs, so `lock --check` can tell fresh from stale without solving or touching the network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from layerkit import inputs
from layerkit.atomic import write_text
from layerkit.digest import digest
from layerkit.errors import CheckFailed, EnvironmentFailure, SolveError, SpecError
from layerkit.lock.model import Lock
from layerkit.lock.pypimap import mapping_file
from layerkit.lock.unified import BASE_DIGESTS_KEY, SPEC_HASH_KEY, read_unified
from layerkit.spec import channelvars as CV
from layerkit.spec import matchspec as M
from layerkit.spec import pip as P
from layerkit.spec.catalog import solve_glibc
from layerkit.spec.validate import Checked, effective_dependencies

LOCK_SCHEMA = 1
_HASH_LINE = re.compile(rf"^\s*{SPEC_HASH_KEY}:\s*['\"]?([0-9a-f]{{64}})", re.MULTILINE)


@dataclass(frozen=True)
class LockInputs:
    channels: tuple[str, ...]
    dependencies: tuple[str, ...]
    pip: tuple[str, ...]
    platforms: tuple[str, ...]
    virtual: dict[str, str]  # __cuda, __glibc
    pip_index: str | None
    # conda-lock's pip-repositories, in order (indexes, then find-links pages), and
    # whether pypi.org is asked too (allow-pypi-requests); ${NAME} credentials stay unexpanded.
    pip_repositories: tuple[str, ...] = ()
    pypi: bool = True

    def spec_hash(self) -> str:
        fields = dict(self.__dict__)
        if not self.pip_repositories and self.pypi:  # as before these fields existed
            del fields["pip_repositories"], fields["pypi"]
        # PEP 503: a pip name's case or separators name the same project (locked as written).
        fields["pip"] = tuple(sorted(P.canonical(r) for r in self.pip))
        return digest({"schema": LOCK_SCHEMA, **fields})


def lock_inputs(checked: Checked) -> LockInputs:
    spec = checked.resolved.spec
    if spec.user_managed:
        raise SpecError("user_managed environments install nothing, so there is nothing to lock")
    conda = spec.conda
    mirrors = spec.mirrors
    channels = M.resolved_channels(conda, mirrors)
    virtual = {
        # conda must not pick packages built for a newer glibc than the base's.
        "__glibc": solve_glibc(checked.image)
    }
    if checked.cuda:  # features.gpu, else the CUDA flavour's: GPU builds, not CPU ones
        virtual["__cuda"] = checked.cuda
    pip = P.section(conda.pip if conda else None)
    opts = pip.options
    site_index = mirrors.pypi_index if mirrors else None
    if opts.pre:
        raise SpecError(
            "--pre cannot be locked: conda-lock's pip solver (Poetry) takes no --pre and picks a "
            "pre-release only when no final release matches; pin the pre-release (e.g. 'name==2.0rc1')",
            checked.resolved.loc(("conda", "pip")),
        )
    for url in opts.find_links:
        if not url.endswith((".html", ".htm")):
            raise SpecError(
                f"--find-links {url} cannot be locked: conda-lock reads a find-links page only when "
                "its URL ends in .html; use that page's URL, or an index with --extra-index-url",
                checked.resolved.loc(("conda", "pip")),
            )
    # The user's --index-url replaces the public index; the site mirror replaces it otherwise.
    index = opts.index_url or site_index
    repos = tuple(dict.fromkeys(u for u in (index, *opts.extra_index_urls, *opts.find_links) if u))
    return LockInputs(
        channels=channels,
        dependencies=tuple(M.qualified(d, mirrors) for d in effective_dependencies(checked)),
        pip=tuple(sorted(pip.requirements)),
        platforms=tuple(spec.platforms or ("linux-64",)),
        virtual=virtual,
        pip_index=site_index,
        pip_repositories=repos,
        pypi=index is None,
    )


def recorded_hash(lockfile: Path) -> str | None:
    """The spec hash a lockfile was made for; a regex, so --check needs no YAML parser."""
    if not os.path.lexists(lockfile):
        return None
    text = inputs.read_text(lockfile, "lock", max_bytes=inputs.MAX_LOCK_BYTES)
    m = _HASH_LINE.search(text)
    return m.group(1) if m else None


def check_fresh(checked: Checked, lockfile: Path, base_refs: Callable[[], Sequence[str]]) -> str:
    """Raise CheckFailed unless `lockfile` was made from these exact inputs. ``base_refs``
    gives the floating base refs (render/baserefs.py), asked only of a lock that pins bases."""
    want = lock_inputs(checked).spec_hash()
    have = recorded_hash(lockfile)
    source = checked.resolved.root.source
    if have is None:
        hint = "no lockfile" if not lockfile.exists() else "the lockfile has no layerkit spec hash"
        raise CheckFailed(f"{hint} at {lockfile}; run `layerkit lock {source}`")
    if have != want:
        raise CheckFailed(
            f"{lockfile} is stale: the spec or its layers changed; run `layerkit lock {source}`"
        )
    if BASE_DIGESTS_KEY in inputs.read_text(lockfile, "lock", max_bytes=inputs.MAX_LOCK_BYTES):
        # The packages are fresh, but a lock that pins base images must pin the current ones:
        # a changed base image or mirror would otherwise quietly go back to a floating tag.
        from layerkit.lock.basepin import unpinned_bases

        missing = unpinned_bases(base_refs(), read_unified(lockfile))
        if missing:
            raise CheckFailed(
                f"{lockfile} is stale: it pins no digest for the base image {missing[0]} "
                f"(the base changed since); run `layerkit lock {source}`"
            )
    return want


def find_solver(explicit: str | None, cache_dir: Path) -> str:
    """--conda, then $LAYERKIT_CONDA, then micromamba/mamba/conda on PATH, then the embedded shim."""
    for candidate in (explicit, os.environ.get("LAYERKIT_CONDA")):
        if candidate:
            found = shutil.which(candidate)
            if not found:
                raise SpecError(f"solver '{candidate}' is not an executable")
            return found
    for name in ("micromamba", "mamba", "conda"):
        found = shutil.which(name)
        if found:
            return found
    from layerkit.lock.shim_launcher import shim_executable

    return str(shim_executable(cache_dir))


def _env_file(inputs: LockInputs) -> dict[str, Any]:
    deps: list[Any] = list(inputs.dependencies)
    if inputs.pip:  # `pip` itself is among the dependencies (spec/implied.py adds_pip)
        deps.append({"pip": list(inputs.pip)})
    doc: dict[str, Any] = {
        "channels": list(inputs.channels),
        "dependencies": deps,
        "platforms": list(inputs.platforms),
    }
    if inputs.pip_repositories:
        doc["pip-repositories"] = list(inputs.pip_repositories)
    if not inputs.pypi:
        doc["allow-pypi-requests"] = False
    return doc


def _solver_error(output: str) -> tuple[str, str] | None:
    """The embedded solver's (exception_name, message) from conda-lock's output, if present."""
    name = re.search(r'"exception_name":\s*"([^"]+)"', output)
    msg = re.search(r'"message":\s*("(?:[^"\\]|\\.)*")', output)
    if not (name and msg):
        return None
    try:
        text = json.loads(msg.group(1))
    except ValueError:
        return None
    return name.group(1), "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


_CHANNEL_HINT = (
    "check conda.channels, or lock from a local channel or mirror with mirrors.channels "
    "({name: url} map) or mirrors.channel_alias (base URL for bare channel names); "
    "see README 'Local channels and mirrors'"
)
_PYPI_HINT = "to lock pip packages from a local index set mirrors.pypi_index (a simple-index URL)"


def _mirror_hint(detail: str) -> str:
    """The settings that route the unreachable host through a mirror."""
    if re.search(r"(?i)pypi|/simple\b|files\.pythonhosted", detail):
        return _PYPI_HINT
    return "unreachable channel: " + _CHANNEL_HINT


def _classify(output: str) -> Exception:
    solver = _solver_error(output)
    tail = [ln for ln in output.strip().splitlines() if ln.strip()][-12:]
    detail = solver[1] if solver else (tail[-1] if tail else "no output")
    kind = solver[0] if solver else ""
    if kind in ("UnsatisfiableError", "PackagesNotFoundError", "InvalidMatchSpec") or re.search(
        r"Unsatisfiable|PackagesNotFound|nothing provides|cannot be installed", output
    ):
        return SolveError(f"the spec cannot be solved: {detail}")
    if re.search(
        r"(?i)connection refused|timed out|dns error|name or service not known|temporary failure|tcp connect",
        detail,
    ):
        url = re.search(r"https?://[^\s)'\"]+", output)
        if url and url.group(0) not in detail:
            detail = f"{url.group(0)}: {detail}"
        return EnvironmentFailure(f"network failure while locking: {detail}; {_mirror_hint(detail)}")
    if re.search(r"(?i)\b404\b|not found|unknown channel|UnavailableInvalidChannel", detail):
        return SpecError(f"a channel could not be found: {detail}; {_CHANNEL_HINT}")
    return EnvironmentFailure("conda-lock failed: " + detail)


def _placed(err: Exception, checked: Checked, inputs: LockInputs) -> Exception:
    """A solve error about one missing package, at the spec line that asks for it, with the fix."""
    missing = re.search(r"No candidates were found for ([A-Za-z0-9_.\-]+)", str(err))
    if not isinstance(err, SolveError) or not missing:
        return err
    r, name = checked.resolved, missing.group(1).lower()
    conda = r.spec.conda
    deps = (conda.dependencies or ()) if conda else ()
    index = next((i for i, d in enumerate(deps) if M.name_of(d) == name), None)
    channels = ", ".join(inputs.channels) or "none"
    if name == "pip" and conda and conda.pip:
        where = r.loc(("conda", "pip")) if index is None else r.loc(("conda", "dependencies", index))
        what = (f"the pip: section needs 'pip' from a conda channel, and none of the channels ({channels}) "
                "has it: add a channel that has pip (conda-forge or defaults) to conda.channels, put pip "
                "in your local channel, or map conda-forge to your mirror with mirrors.channels")  # fmt: skip
    elif index is not None:
        where = r.loc(("conda", "dependencies", index))
        what = (f"'{deps[index]}' is in none of the channels ({channels}): check the name, add the "
                "channel that has it to conda.channels, or map that channel to your mirror with mirrors.channels")  # fmt: skip
    else:
        return err
    return SolveError(f"{what}; {err}", where)


def lock(
    checked: Checked, lockfile: Path, *, update: list[str] | None = None, solver: str | None = None,
    cache_dir: Path | None = None, base_digests: dict[str, str] | None = None,
) -> Lock:  # fmt: skip
    """Lock the spec into `lockfile` (atomically); with `update`, only those packages move.
    `base_digests` (basepin.resolve_for_lock) are recorded in the lock's metadata.
    Returns the lock as read back before it replaced the old one."""
    inputs = lock_inputs(checked)
    # conda-lock expands ${NAME} in channel URLs for the solver only; the lock keeps ${NAME}.
    secrets = CV.values(
        CV.channel_names(inputs.channels), checked.resolved.loc(("conda", "channels")), "lock"
    )
    # conda-lock expands pip-repositories' ${NAME}s itself; a resolver error can print them.
    conda = checked.resolved.spec.conda
    pip_names = P.section(conda.pip).options.env_names() if conda else ()
    secrets |= {n: os.environ[n] for n in pip_names if os.environ.get(n)}
    del cache_dir  # nothing a lock runs or reads comes from the user cache any more (below)
    lockfile = lockfile.resolve()
    if not lockfile.parent.is_dir():
        raise SpecError(f"the lockfile's folder {lockfile.parent} does not exist")
    with (
        tempfile.TemporaryDirectory(prefix=".layerkit-lock-", dir=lockfile.parent) as tmp,
        tempfile.TemporaryDirectory(prefix="layerkit-pip-metadata-") as poetry_cache,
    ):
        work = Path(tmp)
        # The solver shim (code conda-lock runs) and the PyPI mapping (which decides lock
        # content) are written fresh into this private (0700) folder each run, never reused
        # from a cache another writer could have changed between a check and the run.
        exe = find_solver(solver, work / "bin")
        (work / "environment.yml").write_text(json.dumps(_env_file(inputs), indent=2))
        vp = {"subdirs": {p: {"packages": inputs.virtual} for p in inputs.platforms}}
        (work / "virtual-packages.yml").write_text(json.dumps(vp))
        meta = {SPEC_HASH_KEY: inputs.spec_hash()}
        if base_digests:
            meta[BASE_DIGESTS_KEY] = json.dumps(base_digests, sort_keys=True, separators=(",", ":"))
        (work / "metadata.json").write_text(json.dumps(meta))
        target = work / "conda-lock.yml"
        cmd = [sys.executable, "-m", "conda_lock", "lock", "--conda", exe, "-f", "environment.yml",
               "--lockfile", str(target), "--virtual-package-spec", "virtual-packages.yml",
               "--metadata-json", "metadata.json", "--log-level", "ERROR"]  # fmt: skip
        for p in inputs.platforms:
            cmd += ["-p", p]
        # conda-lock's default PyPI<->conda name mapping is downloaded from GitHub: use the
        # shipped copy, so locking pip packages reaches only the channels and indexes named.
        cmd += ["--pypi_to_conda_lookup_file", str(mapping_file(work))]
        if update:
            if not lockfile.is_file():
                raise SpecError(f"--update needs an existing lockfile; {lockfile} does not exist")
            shutil.copyfile(lockfile, target)
            for name in update:
                cmd += ["--update", name]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if secrets:  # rattler's repodata cache records each URL it fetched: keep it in `work`
            env["RATTLER_CACHE_DIR"] = str(work / "rattler-cache")
        # conda-lock's pip resolver (poetry) keeps each index's release metadata by URL and
        # version in the user's cache and never revalidates it: a mirror serving a rebuilt
        # wheel under the same version made the next lock fail, or could lock the old file's
        # dependencies. Each lock reads what the indexes serve now.
        # In the system's temp folder, not beside the lock: on an index without PEP 658
        # metadata poetry downloads candidate wheels to read theirs.
        env["POETRY_CACHE_DIR"] = str(poetry_cache)
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not target.is_file():
            raise _placed(_classify(CV.mask(proc.stdout + "\n" + proc.stderr, secrets)), checked, inputs)
        if secrets and CV.mask(text := target.read_text(encoding="utf-8"), secrets) != text:
            raise EnvironmentFailure(
                "conda-lock wrote a channel credential into the lock instead of its ${NAME}; "
                "the lock was not written"
            )
        lk = read_unified(target)  # refuse to install a lock we cannot read back
        os.replace(target, lockfile)
    return lk.model_copy(update={"source": str(lockfile)})


def write_explicit(lockfile: Path, lk: Lock) -> list[Path]:
    """Write `<stem>.<platform>.explicit.txt` beside the lock: what the env stage installs."""
    stem = lockfile.name.removesuffix(".conda-lock.yml").removesuffix(".yml")
    out = []
    for platform in lk.platforms:
        out.append(write_text(lockfile.with_name(f"{stem}.{platform}.explicit.txt"), lk.explicit(platform)))
    return out
