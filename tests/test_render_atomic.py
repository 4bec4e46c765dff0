"""`render -o DIR` replaces the context directory atomically (issue 15 §4): a write failure or
a SIGINT at any point leaves the old directory exactly as it was; after a finished render
it holds exactly the new context, never a mix. No sleeps: the interrupted process is held
at its point by a line it waits for (tests/helpers/render_held.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from layerkit import api, atomic
from layerkit.errors import SpecError

HERE = Path(__file__).parent
SPECS = HERE / "specs"
ROOT = HERE.parent
OLD_SPEC = "name: old\nconda:\n  channels: [conda-forge]\n  dependencies: [python=3.11]\n"


def listing(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def siblings(d: Path) -> list[str]:
    return sorted(p.name for p in d.parent.iterdir() if p.name.startswith(f".{d.name}."))


@pytest.fixture
def old(tmp_path: Path) -> Path:
    """A context directory of an older render: other files than the new render writes."""
    spec = tmp_path / "old.yaml"
    spec.write_text(OLD_SPEC)
    out = tmp_path / "ctx"
    api.write_context(api.render(spec, auto_lock=False), out)
    return out


def new_files() -> dict[str, str]:
    return api.render(SPECS / "full-cpu.yaml", auto_lock=False).files


def test_the_old_and_new_contexts_differ_in_their_files(old: Path) -> None:
    assert set(listing(old)) != set(new_files())  # else a mix could not be seen


def test_a_finished_render_holds_exactly_the_new_context(old: Path) -> None:
    api.write_context(api.render(SPECS / "full-cpu.yaml", auto_lock=False), old)
    assert listing(old) == {k: v.encode() for k, v in new_files().items()}
    assert siblings(old) == []


@pytest.mark.parametrize("failing", [0, 2, 4])
def test_a_failed_write_leaves_the_old_directory(
    old: Path, monkeypatch: pytest.MonkeyPatch, failing: int
) -> None:
    before = listing(old)
    real = atomic._write_synced
    calls: list[Path] = []

    def write(path: Path, content: str, mode: int) -> None:
        calls.append(path)
        if len(calls) > failing:
            raise OSError(28, "No space left on device", str(path))
        real(path, content, mode)

    monkeypatch.setattr(atomic, "_write_synced", write)
    with pytest.raises(OSError, match="No space"):
        api.write_context(api.render(SPECS / "full-cpu.yaml", auto_lock=False), old)
    assert listing(old) == before and siblings(old) == []


def test_without_renameat2_the_old_directory_steps_aside(old: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    api.write_context(api.render(SPECS / "full-cpu.yaml", auto_lock=False), old)
    assert listing(old) == {k: v.encode() for k, v in new_files().items()} and siblings(old) == []


def test_without_renameat2_a_failed_step_in_puts_the_old_back(
    old: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = listing(old)
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    real = os.rename

    def rename(src: object, dst: object) -> None:
        if str(src).endswith(".new"):
            raise OSError(5, "Input/output error")
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(atomic.os, "rename", rename)
    with pytest.raises(OSError, match="Input/output"):
        api.write_context(api.render(SPECS / "full-cpu.yaml", auto_lock=False), old)
    monkeypatch.undo()
    assert listing(old) == before and siblings(old) == []


@pytest.mark.parametrize("content", [{"spec.yaml": "name: mine\n"}, {"Dockerfile": "FROM x\n"}])
def test_a_folder_of_the_users_is_never_replaced(tmp_path: Path, cli, content: dict[str, str]) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    for name, text in content.items():
        (mine / name).write_text(text)
    with pytest.raises(SpecError, match="not a context directory layerkit rendered"):
        atomic.replace_dir(mine, {"Dockerfile": "x"})
    r = cli("render", SPECS / "full-cpu.yaml", "-o", mine)
    assert r.code == 2 and "render into a new or empty directory" in r.err
    assert listing(mine) == {k: v.encode() for k, v in content.items()}


def _held(point: str, out: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]))
    cmd = [sys.executable, str(HERE / "helpers" / "render_held.py"), point, "-q", "render"]
    proc = subprocess.Popen(
        [*cmd, str(SPECS / "full-cpu.yaml"), "--no-lock", "-o", str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline() == "held\n", proc.communicate()
    return proc


@pytest.mark.parametrize("point", ["file", "swap"])
def test_sigint_to_a_real_render_leaves_the_old_directory(old: Path, point: str) -> None:
    before = listing(old)
    proc = _held(point, old)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    assert proc.returncode == 130, err
    assert listing(old) == before and siblings(old) == []


@pytest.mark.parametrize("point", ["file", "swap"])
def test_a_released_real_render_holds_exactly_the_new_context(old: Path, point: str) -> None:
    proc = _held(point, old)
    _, err = proc.communicate("go\n")
    assert proc.returncode == 0, err
    assert listing(old) == {k: v.encode() for k, v in new_files().items()} and siblings(old) == []
