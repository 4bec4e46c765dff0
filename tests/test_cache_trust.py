"""No file under LAYERKIT_CACHE can change an output, a push target or the code that runs
(issue 15 §4). The audit, kept as tests: every user of the cache is listed with why it is
safe, and a planted solver shim or PyPI mapping in the cache is never run or read."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from layerkit.lock import solve as lockrun
from layerkit.lock.shim_launcher import _script
from layerkit.spec.load import load_text
from layerkit.spec.merge import resolve
from layerkit.spec.validate import check

LAYERKIT = Path(__file__).resolve().parent.parent / "layerkit"

# module -> why what it keeps under cache_dir() cannot change an output, a push target or code.
AUDITED = {
    # Build locks: flock()ed files, never read; a planted one can only make a build wait.
    "build/builder.py": "build-locks/<hash>.lock is only flock()ed",
    # The env index: content-addressed, every blob checked against its sha256 on read; online
    # only the digest the registry names is taken (tests/test_envs.py tamper tests).
    "envs/store.py": "envs/: content-addressed, verified, the registry's digest decides",
    "resources.py": "defines cache_dir()",
}


def test_every_user_of_the_cache_is_audited() -> None:
    users = {
        str(p.relative_to(LAYERKIT))
        for p in LAYERKIT.rglob("*.py")
        if re.search(r"import cache_dir|\bcache_dir\(\)|LAYERKIT_CACHE", p.read_text(encoding="utf-8"))
    }
    assert users == set(AUDITED), f"audit the new cache users: {sorted(users - set(AUDITED))}"


PIP_ENV = "name: p\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n    - torch\n"


def test_a_planted_shim_and_mapping_in_the_cache_are_never_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("LAYERKIT_CACHE", str(cache))
    monkeypatch.setenv("PATH", str(tmp_path / "no-solvers"))  # the embedded shim, not a conda
    (cache / "bin").mkdir(parents=True)
    planted = "#!/bin/sh\necho planted > /dev/null\n"
    (cache / "bin" / "conda").write_text(planted)
    (cache / "bin" / "conda").chmod(0o755)
    for name in ("pypi-mapping.json", *(f"pypi-mapping-{'0' * 16}.json",)):
        (cache / name).write_text('{"torch": {"conda_name": "planted"}}')
    seen: dict[str, Any] = {}

    def fake_run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        exe = Path(cmd[cmd.index("--conda") + 1])
        mapping = Path(cmd[cmd.index("--pypi_to_conda_lookup_file") + 1])
        seen.update(exe=exe, shim=exe.read_text(), mapping=json.loads(mapping.read_bytes()),
                    mode=exe.parent.parent.stat().st_mode & 0o777)  # fmt: skip
        return subprocess.CompletedProcess(cmd, 1, "", "stop here")

    monkeypatch.setattr(lockrun.subprocess, "run", fake_run)
    with pytest.raises(Exception, match="stop here"):
        lockrun.lock(check(resolve(load_text(PIP_ENV, "environment.yml"))), tmp_path / "x.conda-lock.yml")
    assert not seen["exe"].is_relative_to(cache) and seen["shim"] == _script(sys.executable)
    assert seen["mode"] == 0o700  # the lock's own work folder: no other user writes there
    assert seen["mapping"]["torch"]["conda_name"] == "pytorch"
    assert (cache / "bin" / "conda").read_text() == planted  # neither run nor rewritten
