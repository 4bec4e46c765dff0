"""`layerkit make` under the real GNU make: three environments, two sharing a layer, locked
with the real conda-lock path (local channel), rendered and "built" (`layerkit hash` stands
in for `layerkit build` here, so the stamp holds the hash that names it; the chain with a
real build on dockerd is tests/test_build.py::test_make_builds_the_image_and_redoes_only_what_changed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from check_project import git

from layerkit import api
from layerkit.errors import SpecError
from layerkit.integrate.makefile import shell, target

pytestmark = [pytest.mark.integration, pytest.mark.slow]
README = Path(__file__).resolve().parent.parent / "README.md"
SPECS = ("envs/a/layerkit.yaml", "envs/b.layerkit.yaml", "envs/c d/layerkit.yaml")
LOCKS = (
    "envs/a/layerkit.conda-lock.yml",
    "envs/b.layerkit.conda-lock.yml",
    "envs/c d/layerkit.conda-lock.yml",
)


def project(root: Path, url: str) -> Path:
    (root / "envs" / "a").mkdir(parents=True)
    (root / "envs" / "c d").mkdir()
    (root / "envs" / "team.yaml").write_text(
        f"conda:\n  channels: ['{url}']\n  dependencies: [python=3.11]\n"
    )
    (root / SPECS[0]).write_text("name: a\nextends: [../team.yaml]\nconda:\n  dependencies: [datakit=1.0]\n")
    (root / SPECS[1]).write_text("name: b\nextends: [team.yaml]\nconda:\n  dependencies: [corelib=1.5]\n")
    # c does not extend the team layer; its directory name needs escaping in make.
    (root / SPECS[2]).write_text(f"name: c\nconda:\n  channels: ['{url}']\n  dependencies: [python=3.10]\n")
    # The README's example Makefile, with this interpreter's layerkit and `hash` for `build`.
    section = README.read_text().split("\n## make\n", 1)[1]
    example = re.search(r"```make\n(.*?)```", section, re.S)
    assert example, "README lost its example Makefile"
    (root / "Makefile").write_text(
        f"LAYERKIT := {sys.executable} -m layerkit\n"
        "LAYERKIT_LOCK_FLAGS := --no-pin-base\n"
        "LAYERKIT_BUILD := $(LAYERKIT) -q hash\n" + example.group(1)
    )
    new_repo_in_place(root)  # `layerkit make` with no SPEC takes the roots git tracks
    return root


def new_repo_in_place(root: Path) -> None:
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "envs")
    git(root, "commit", "-q", "-m", "specs")


def run_make(root: Path, *goals: str) -> list[str]:
    """The commands make ran (its echo of each recipe line), in order."""
    proc = subprocess.run(["make", "-j2", *(goals or ["all"])], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [ln for ln in proc.stdout.splitlines() if not ln.startswith("make")]


def regenerated(commands: list[str]) -> bool:
    """Only the fragment was remade: a lock solved by the last call changed the hashes."""
    return len(commands) == 1 and " make -o layerkit.mk" in commands[0]


def solved(commands: list[str]) -> bool:
    return any(re.search(r" lock( |$)", c) for c in commands)


def ran(commands: list[str], verb: str) -> set[str]:
    """Specs a `layerkit VERB ... SPEC` command ran for (lock: the --check probe)."""
    pattern = {
        "lock": r" lock --check (.+?) 2>",
        "render": r" check --fix (.+?) --context",
        "build": r" hash (.+?) >",
    }
    found = {m.group(1) for c in commands for m in [re.search(pattern[verb], c)] if m}
    return {s.strip("'") for s in found}


def mtimes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def bump(path: Path, root: Path) -> None:
    """Touch `path` so it is newer than every file make made, however long that took. It gets
    the file system's own current time, never a future one: make would take a time stamp ahead
    of the clock as newer than whatever it writes next and remake the fragment until the clock
    caught up. Touched again until the time stamp is past the newest file's (a coarse time
    stamp can equal it); the deadline only bounds a clock that stands still."""
    newest = max(mtimes(root).values())
    deadline = time.monotonic() + 60
    os.utime(path)
    while path.stat().st_mtime_ns <= newest:
        assert time.monotonic() < deadline, f"{path}'s time stamp stays at or before {newest} ns"
        time.sleep(0.01)
        os.utime(path)


def fragment_runs(commands: list[str]) -> int:
    return sum(" make -o layerkit.mk" in c for c in commands)


def stamps(root: Path) -> dict[str, set[str]]:
    """Stamp file names per environment (one per hash ever built)."""
    out: dict[str, set[str]] = {}
    for p in (root / ".layerkit" / "images").glob("*/*"):
        out.setdefault(p.parent.name, set()).add(p.name)
    return out


def test_make_redoes_only_what_a_layer_change_affects(
    channel: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATTLER_CACHE_DIR", str(tmp_path / "rattler"))
    monkeypatch.setenv("LAYERKIT_CACHE", str(tmp_path / "lk-cache"))
    root = project(tmp_path / "proj", channel[1])

    first = run_make(root)
    assert ran(first, "lock") == ran(first, "render") == ran(first, "build") == set(SPECS)
    assert all((root / lock).is_file() for lock in LOCKS)
    monkeypatch.chdir(root)
    # Each stamp is named by the environment's hash and holds what the build step printed.
    for name, spec in zip("abc", SPECS, strict=True):
        h = api.hash_spec(Path(spec)).hash
        assert (root / ".layerkit" / "images" / name / h).read_text().strip() == h
        assert (
            api.check([Path(spec)], context=Path(spec).parent / f"{Path(spec).name[:-5]}.context").exit_code
            == 0
        )

    # The locks solved after the fragment was written: the next call rewrites it, no more.
    assert regenerated(run_make(root))
    before = mtimes(root)
    assert run_make(root) == []  # nothing to do

    # Touch the shared layer: only a and b run their chains, and their locks stay (fresh).
    bump(root / "envs" / "team.yaml", root)
    touched = run_make(root)
    assert fragment_runs(touched) == 1, touched  # the layer is not ahead of make's clock
    assert ran(touched, "lock") == ran(touched, "render") == {SPECS[0], SPECS[1]}
    after = mtimes(root)
    assert [f for f in LOCKS if after[f] != before[f]] == list(LOCKS[:2])
    assert [f for f in after if f.startswith("envs/c d/") and after[f] != before[f]] == []
    old_stamps = stamps(root)
    assert run_make(root) == []

    # A new dependency in the shared layer relocks a and b: new hashes, new stamps; c stays.
    team = root / "envs" / "team.yaml"
    team.write_text(team.read_text().replace("[python=3.11]", "[python=3.11, toolz=0.12]"))
    bump(team, root)
    changed = run_make(root)
    assert ran(changed, "lock") == ran(changed, "build") == {SPECS[0], SPECS[1]}
    assert any(" lock --no-pin-base envs/a/layerkit.yaml" in c for c in changed)  # it did solve
    assert "toolz" in (root / LOCKS[0]).read_text() and "toolz" in (root / LOCKS[1]).read_text()
    assert "toolz" not in (root / LOCKS[2]).read_text()
    new_stamps = stamps(root)
    for name, spec in (("a", SPECS[0]), ("b", SPECS[1])):
        assert new_stamps[name] - old_stamps[name] == {api.hash_spec(Path(spec)).hash}
    assert new_stamps["c"] == old_stamps["c"] and len(old_stamps["c"]) == 1
    assert regenerated(run_make(root))
    assert run_make(root) == []


def test_a_stale_lock_is_solved_only_for_its_own_targets(
    channel: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 §4: including layerkit.mk solved every stale lock on every make call (the
    locks were prerequisites of the fragment), for an unrelated target and under `make -n`."""
    monkeypatch.setenv("RATTLER_CACHE_DIR", str(tmp_path / "rattler"))
    monkeypatch.setenv("LAYERKIT_CACHE", str(tmp_path / "lk-cache"))
    root = project(tmp_path / "proj", channel[1])
    with (root / "Makefile").open("a") as fh:
        fh.write("\nhello:\n\t@echo hello from an unrelated target\n")
    run_make(root, "layerkit-locks")
    # a's lock goes stale: a new dependency in a's own spec.
    spec_a = root / SPECS[0]
    spec_a.write_text(spec_a.read_text().replace("[datakit=1.0]", "[datakit=1.0, toolz=0.12]"))
    bump(spec_a, root)
    lock_a = root / LOCKS[0]
    stale = (lock_a.read_text(), lock_a.stat().st_mtime_ns)

    def untouched() -> bool:
        return (lock_a.read_text(), lock_a.stat().st_mtime_ns) == stale

    unrelated = run_make(root, "hello")
    assert unrelated[-1] == "hello from an unrelated target" and not solved(unrelated), unrelated
    assert untouched()

    dry = subprocess.run(["make", "-n", "a-image"], cwd=root, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "lock --check envs/a/layerkit.yaml" in dry.stdout  # printed, not run
    assert untouched()

    other = run_make(root, "b-image")
    assert ran(other, "build") == {SPECS[1]} and not ran(other, "lock")
    assert untouched()

    # a's own target solves it, and the image stamp is named by the hash it was built with.
    own = run_make(root, "a-image")
    assert ran(own, "lock") == {SPECS[0]} and "toolz" in lock_a.read_text()
    monkeypatch.chdir(root)
    h = api.hash_spec(Path(SPECS[0])).hash
    assert (root / ".layerkit" / "images" / "a" / h).read_text().strip() == h
    assert regenerated(run_make(root, "a-image"))
    assert run_make(root, "a-image") == []


def test_make_paths_are_escaped_or_refused() -> None:
    assert target("envs/c d/x#1:y$") == "envs/c\\ d/x\\#1\\:y$$"
    assert shell("envs/c d/it's") == "'envs/c d/it'\"'\"'s'"
    for bad in ("envs/%/x", "a=b", "a;b", "x*"):
        with pytest.raises(SpecError, match="make cannot name"):
            target(bad)


def test_same_names_take_their_versions(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for d, version in (("v1", "1"), ("v2", "2")):
        (tmp_path / d).mkdir()
        (tmp_path / d / "layerkit.yaml").write_text(
            f"name: train\nversion: '{version}'\nuser_managed: true\nbase: {{image: 'debian:12'}}\n"
        )
    r = cli("make", "v2/layerkit.yaml", "v1/layerkit.yaml", "-o", "out/layerkit.mk")
    assert r.code == 0, r.err
    text = (tmp_path / "out" / "layerkit.mk").read_text()
    assert ".PHONY: train-1-lock train-1-render train-1-image" in text and "train-2-image:" in text
    assert "lock --check" not in text  # user_managed: nothing to lock
    assert cli("make", "v1/layerkit.yaml", "v2/layerkit.yaml").out == text  # sorted, deterministic
    (tmp_path / "adir").mkdir()
    unwritable = cli("make", "v1/layerkit.yaml", "-o", "adir")
    assert unwritable.code == 2 and "adir: cannot write the fragment" in unwritable.err
    (tmp_path / "v2" / "layerkit.yaml").write_text(
        "name: train\nversion: '1'\nuser_managed: true\nbase: {image: 'debian:12'}\n"
    )
    clash = cli("make", "v1/layerkit.yaml", "v2/layerkit.yaml")
    assert clash.code == 2 and "v2/layerkit.yaml: error: environment name 'train-1' is also v1" in clash.err


def test_a_multi_platform_stamp_is_named_by_the_index_hash(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recipe names the stamp by `layerkit hash`, which for two platforms is the image
    index's hash: the fragment must expect that name, or make would rebuild every time."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "layerkit.yaml").write_text(
        "name: multi\nuser_managed: true\nplatforms: [linux-64, linux-aarch64]\nbase: {image: 'debian:12'}\n"
    )
    r = cli("make", "layerkit.yaml")
    assert r.code == 0, r.err
    index = cli("hash", "layerkit.yaml").out.strip()
    first = cli("hash", "layerkit.yaml", "--platform", "linux-64").out.strip()
    assert index != first
    assert f"multi/{index}" in r.out and first not in r.out
