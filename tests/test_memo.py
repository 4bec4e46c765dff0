"""The whole-process memo of pure commands (layerkit/memo.py), run as real processes.

A hit is recognised by what it does not do: `-X importtime` shows that a replayed run
imports neither pydantic nor jinja2, while a miss does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SPEC = """\
name: memo
extends: [layer.yaml]
base: {{flavour: cpu-ubuntu22.04}}
conda:
  channels: [conda-forge]
  dependencies: [python=3.11, numpy]
"""
LAYER = "env:\n  A: '{a}'\n"
LOCK = """\
version: 1
metadata: {{}}
package:
- name: python
  version: 3.11.9
  manager: conda
  platform: linux-64
  url: https://repo.example.com/conda-forge/linux-64/python-3.11.9-h0_0.conda
  hash: {{md5: {md5}}}
  dependencies: {{}}
"""


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "layerkit.yaml").write_text(SPEC.format())
    (tmp_path / "layer.yaml").write_text(LAYER.format(a="1"))
    return tmp_path


def _run(work: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "LAYERKIT_NO_CACHE"}
    full_env.update({"LAYERKIT_CACHE": str(work / "cache"), **(env or {})})
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "layerkit", *args],
        cwd=work,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _imported_pydantic(r: subprocess.CompletedProcess[str]) -> bool:
    modules = (
        line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")
    )
    return any(m.split(".")[0] in ("pydantic", "jinja2") for m in modules)


def _messages(r: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in r.stderr.splitlines() if not line.startswith("import time:")]


def test_second_render_replays_output_and_warnings_without_heavy_imports(work: Path) -> None:
    first = _run(work, "render", "layerkit.yaml")
    second = _run(work, "render", "layerkit.yaml")
    assert first.returncode == second.returncode == 0
    assert _imported_pydantic(first) and not _imported_pydantic(second)
    assert second.stdout == first.stdout and "FROM ubuntu:22.04 AS base" in second.stdout
    assert _messages(second) == _messages(first)
    assert any("no lock found" in m for m in _messages(second))


def test_a_changed_layer_or_a_new_default_lock_is_seen(work: Path) -> None:
    base = _run(work, "hash", "layerkit.yaml")
    (work / "layer.yaml").write_text(LAYER.format(a="2"))
    changed = _run(work, "hash", "layerkit.yaml")
    assert _imported_pydantic(changed)
    assert changed.stdout != base.stdout
    assert _run(work, "hash", "layerkit.yaml").stdout == changed.stdout
    # The lock beside the spec was absent when the result was stored: its arrival is a change.
    (work / "layerkit.conda-lock.yml").write_text(LOCK.format(md5="a" * 32))
    locked = _run(work, "hash", "layerkit.yaml")
    assert _imported_pydantic(locked)
    assert locked.stdout != changed.stdout
    # ...and so is an edit of the lock itself.
    (work / "layerkit.conda-lock.yml").write_text(LOCK.format(md5="b" * 32))
    relocked = _run(work, "hash", "layerkit.yaml")
    assert relocked.returncode == 0 and relocked.stdout not in (locked.stdout, changed.stdout)


def test_failures_writes_and_opt_out_are_never_stored(work: Path) -> None:
    memo_dir = work / "cache" / "memo"
    assert _run(work, "render", "layerkit.yaml", "-o", "ctx").returncode == 0
    assert (work / "ctx" / "Dockerfile").is_file()
    (work / "bad.yaml").write_text("name: x\nbsae: {}\n")
    assert _run(work, "validate", "bad.yaml").returncode == 2
    assert _run(work, "show", "layerkit.yaml", env={"LAYERKIT_NO_CACHE": "1"}).returncode == 0
    assert not memo_dir.exists() or list(memo_dir.iterdir()) == []
    # No abbreviation reaches -o silently; an attached `-octx` always writes.
    assert _run(work, "render", "layerkit.yaml", "--out", "ctx").returncode == 2
    for _ in range(2):
        (work / "ctx" / "Dockerfile").unlink()
        assert _run(work, "render", "layerkit.yaml", "-octx").returncode == 0
        assert (work / "ctx" / "Dockerfile").is_file()
    assert not memo_dir.exists() or list(memo_dir.iterdir()) == []
    # A bad spec stays an error on every run: nothing replays a success for it.
    again = _run(work, "validate", "bad.yaml")
    assert again.returncode == 2 and "bsae" in "".join(_messages(again))


def test_a_misplaced_or_foreign_writable_entry_is_never_replayed(work: Path) -> None:
    (work / "other.yaml").write_text(SPEC.format().replace("numpy", "scipy"))
    mine = _run(work, "hash", "layerkit.yaml")
    other = _run(work, "hash", "other.yaml")
    assert mine.stdout != other.stdout
    entries = {p.read_text(): p for p in (work / "cache" / "memo").glob("*.json")}
    by_spec = {("other" if "other.yaml" in text else "mine"): p for text, p in entries.items()}
    assert set(by_spec) == {"mine", "other"}
    # The other spec's entry under this spec's key: refused, the real run answers.
    by_spec["mine"].write_text(by_spec["other"].read_text())
    again = _run(work, "hash", "layerkit.yaml")
    assert again.stdout == mine.stdout and _imported_pydantic(again)
    assert not _imported_pydantic(hit := _run(work, "hash", "layerkit.yaml")) and hit.stdout == mine.stdout
    # An entry others could have written is not trusted either.
    os.chmod(by_spec["mine"], 0o666)
    assert _imported_pydantic(_run(work, "hash", "layerkit.yaml"))
