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


def new_context() -> dict[str, bytes]:
    """What a finished render leaves: the rendered files and the manifest naming them."""
    files = {k: v.encode() for k, v in new_files().items()}
    manifest = atomic.MANIFEST_HEAD + "".join(f"{n}\n" for n in sorted(files))
    return {**files, atomic.MANIFEST: manifest.encode()}


def test_a_context_check_fix_rewrote_is_replaced_by_render(tmp_path: Path, cli) -> None:
    """`make` keeps contexts with `check --fix`: the files it adds must not block `render -o`."""
    spec = tmp_path / "env.yaml"
    spec.write_text(OLD_SPEC)
    ctx = tmp_path / "ctx"
    assert cli("-q", "render", spec, "--no-lock", "-o", ctx).code == 0
    spec.write_text(OLD_SPEC.replace("[python=3.11]", "[python=3.11, pip]\n  pip: [requests==2.31.0]"))
    files = api.render(spec, auto_lock=False).files
    assert not set(files) <= set(listing(ctx))  # check --fix adds files
    r = cli("-q", "check", "--fix", spec, "--context", ctx)
    assert r.code == 0, r.err
    assert set(listing(ctx)) == {*files, atomic.MANIFEST}
    r = cli("-q", "render", spec, "--no-lock", "-o", ctx)
    assert r.code == 0, r.err
    assert listing(ctx)[atomic.MANIFEST] == atomic.manifest(files).encode()


def test_the_old_and_new_contexts_differ_in_their_files(old: Path) -> None:
    assert set(listing(old)) != set(new_context())  # else a mix could not be seen


def test_a_finished_render_holds_exactly_the_new_context(old: Path) -> None:
    api.write_context(api.render(SPECS / "full-cpu.yaml", auto_lock=False), old)
    assert listing(old) == new_context()
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
    assert listing(old) == new_context() and siblings(old) == []


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
    with pytest.raises(SpecError, match="not a file layerkit rendered there"):
        atomic.replace_dir(mine, {"Dockerfile": "x"})
    r = cli("render", SPECS / "full-cpu.yaml", "-o", mine)
    assert r.code == 2 and "render into a new or empty folder" in r.err
    assert listing(mine) == {k: v.encode() for k, v in content.items()}


USERS = {"layerkit.yaml": OLD_SPEC, "conda-lock.yml": "version: 1\n"}


@pytest.mark.parametrize("manifest", [True, False], ids=["rendered", "rendered-before-manifests"])
def test_the_users_files_beside_a_rendered_context_are_never_deleted(old: Path, cli, manifest: bool) -> None:
    """The reviewer's case: a folder with a rendered Dockerfile and the user's spec and lock."""
    if not manifest:
        (old / atomic.MANIFEST).unlink()
    for name, text in USERS.items():
        (old / name).write_text(text)
    before = listing(old)
    r = cli("-q", "render", SPECS / "full-cpu.yaml", "--no-lock", "-o", old)
    assert r.code == 2, r.err
    assert len(r.err.splitlines()) == 1 and f"{old}/conda-lock.yml is not a file layerkit rendered" in r.err
    assert listing(old) == before and siblings(old) == []


def test_a_context_rendered_before_manifests_is_replaced_when_it_holds_only_rendered_names(
    tmp_path: Path,
) -> None:
    ctx = tmp_path / "ctx"
    api.write_context(api.render(SPECS / "full-cpu.yaml", auto_lock=False), ctx)
    (ctx / atomic.MANIFEST).unlink()
    (ctx / "environment.yml").write_text("stale\n")
    api.write_context(api.render(SPECS / "full-cpu.yaml", auto_lock=False), ctx)
    assert listing(ctx) == new_context()


def test_render_into_the_current_folder_rewrites_its_rendered_files(
    old: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-o .` cannot swap the folder the shell stands in: each file is replaced atomically."""
    monkeypatch.chdir(old)
    inode = os.stat(old).st_ino
    r = cli("render", SPECS / "full-cpu.yaml", "--no-lock", "-o", ".")
    assert r.code == 0, r.err
    assert listing(old) == new_context() and os.stat(old).st_ino == inode
    assert not [p for p in old.iterdir() if p.name.endswith(".tmp")] and siblings(old) == []


def test_render_into_the_current_folder_with_the_users_spec_is_refused(
    tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "layerkit.yaml").write_text(OLD_SPEC)
    monkeypatch.chdir(tmp_path)
    r = cli("render", "layerkit.yaml", "--no-lock", "-o", ".")
    assert r.code == 2 and f"{tmp_path}/layerkit.yaml is not a file layerkit rendered" in r.err
    assert listing(tmp_path) == {"layerkit.yaml": OLD_SPEC.encode()}


def test_render_into_a_parent_of_the_current_folder_is_refused(
    old: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    (old / "sub").mkdir()
    (old / "sub" / "x").write_text("mine\n")
    monkeypatch.chdir(old / "sub")
    before = sorted(p.name for p in old.iterdir())
    r = cli("-q", "render", SPECS / "full-cpu.yaml", "--no-lock", "-o", "..")
    assert r.code == 2 and "holds the current folder" in r.err and len(r.err.splitlines()) == 1
    assert sorted(p.name for p in old.iterdir()) == before and (old / "sub" / "x").read_text() == "mine\n"


def test_a_symlinked_output_replaces_its_target_and_stays_a_link(old: Path, cli) -> None:
    link = old.parent / "link"
    link.symlink_to(old)
    r = cli("render", SPECS / "full-cpu.yaml", "--no-lock", "-o", link)
    assert r.code == 0, r.err
    assert link.is_symlink() and link.resolve() == old and listing(old) == new_context()


def test_an_output_naming_a_regular_file_is_refused(tmp_path: Path, cli) -> None:
    f = tmp_path / "Dockerfile"
    f.write_text("FROM mine\n")
    r = cli("render", SPECS / "full-cpu.yaml", "--no-lock", "-o", f)
    assert r.code == 2 and "is not a directory" in r.err
    assert f.read_text() == "FROM mine\n"


def test_an_empty_folder_is_rendered_into(tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    api.write_context(api.render(SPECS / "full-cpu.yaml", auto_lock=False), tmp_path / "ctx")
    assert listing(tmp_path / "ctx") == new_context()


NESTED = {"Dockerfile": atomic.GENERATED + "\nFROM x\n", "inference/nginx.conf": "events {}\n"}


def test_rendered_folders_are_replaced_but_a_users_file_in_one_is_not(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    atomic.replace_dir(ctx, NESTED)
    assert (ctx / "inference" / "nginx.conf").read_text() == "events {}\n"
    atomic.replace_dir(ctx, {**NESTED, "inference/nginx.conf": "events { }\n"})
    assert (ctx / "inference" / "nginx.conf").read_text() == "events { }\n"
    (ctx / "inference" / "model.pkl").write_bytes(b"mine")
    with pytest.raises(SpecError, match=r"ctx/inference/model\.pkl is not a file layerkit rendered"):
        atomic.replace_dir(ctx, NESTED)
    assert (ctx / "inference" / "model.pkl").read_bytes() == b"mine"


def test_a_manifest_naming_files_outside_the_folder_deletes_nothing_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "precious"
    outside.write_text("keep\n")
    ctx = tmp_path / "ctx"
    atomic.replace_dir(ctx, NESTED)
    (ctx / atomic.MANIFEST).write_text(atomic.manifest([*NESTED, "../precious", "/etc/x"]))
    monkeypatch.chdir(ctx)  # the in-place path removes what the old list named
    atomic.replace_dir(Path("."), {"Dockerfile": NESTED["Dockerfile"]})
    assert outside.read_text() == "keep\n"
    assert sorted(p.name for p in ctx.iterdir()) == [atomic.MANIFEST, "Dockerfile"]


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
    assert listing(old) == new_context() and siblings(old) == []
