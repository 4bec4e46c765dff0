"""`layerkit check`: valid specs, fresh locks (real conda-lock locks, local channel) and
committed rendered contexts, in real git repositories."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from check_project import git, locked_template, new_repo

pytestmark = pytest.mark.integration

A = "envs/a/layerkit.yaml"
B = "envs/b.layerkit.yaml"


@pytest.fixture(scope="module")
def template(channel: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return locked_template(channel[1], tmp_path_factory)


@pytest.fixture
def repo(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = new_repo(template, tmp_path / "repo")
    monkeypatch.chdir(root)
    monkeypatch.setenv("LAYERKIT_CACHE", str(tmp_path / "lk-cache"))
    return root


def lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.strip()]


def test_discovers_roots_and_sees_stale_and_missing_locks(cli, repo: Path) -> None:
    r = cli("check", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["schema"] == "layerkit.check/1" and doc["ok"] is True
    # Roots come from git: the layer envs/team.yaml is not one.
    assert [s["spec"] for s in doc["specs"]] == [A, B]
    assert [s["lock"]["status"] for s in doc["specs"]] == ["fresh", "missing"]
    assert lines(r.err) == [
        f"{B}: warning: no lockfile (envs/b.layerkit.conda-lock.yml): the image would install "
        f"the unlocked spec; run `layerkit lock {B}`"
    ]
    required = cli("check", "--require-lock")
    assert required.code == 1 and lines(required.err) == [ln.replace("warning: ", "") for ln in lines(r.err)]

    # An env var in the shared layer is not a lock input; a dependency is.
    team = repo / "envs" / "team.yaml"
    team.write_text(team.read_text().replace("TEAM: '1'", "TEAM: '2'"))
    assert cli("check", A).code == 0
    team.write_text(team.read_text().replace("[python=3.11]", "[python=3.11, corelib]"))
    stale = cli("-q", "check", "--json")
    assert stale.code == 1
    assert lines(stale.err) == [
        "envs/a/layerkit.conda-lock.yml: stale: envs/a/layerkit.yaml or a layer it extends changed "
        f"since it was locked; run `layerkit lock {A}`"
    ]
    specs = json.loads(stale.out)["specs"]
    assert specs[0]["ok"] is False and specs[0]["lock"]["status"] == "stale"
    assert specs[1]["ok"] is True  # b has no lock: a warning, silenced by -q


def test_committed_context_is_compared_and_fixed(cli, repo: Path, tmp_path: Path) -> None:
    ctx = repo / "envs" / "a" / "layerkit.context"
    assert cli("-q", "render", A, "-o", ctx).code == 0
    untracked = json.loads(cli("check", A, "--json").out)["specs"][0]
    assert untracked["context"] is None  # not in git: a build output, not checked
    git(repo, "add", str(ctx))
    assert json.loads(cli("check", A, "--json").out)["specs"][0]["context"]["status"] == "current"

    spec = repo / A
    spec.write_text(spec.read_text() + "env: {MODE: train}\n")  # changes the Dockerfile only
    (ctx / "leftover.txt").write_text("x")
    r = cli("check", "--json")
    assert r.code == 1
    assert [ln for ln in lines(r.err) if "layerkit.context" in ln] == [
        f"envs/a/layerkit.context/Dockerfile: out of date with what {A} renders; run `layerkit check --fix {A}`",
        f"envs/a/layerkit.context/leftover.txt: not part of the rendered context of {A}; run `layerkit check --fix {A}`",
    ]
    assert json.loads(r.out)["specs"][0]["context"] == {
        "path": "envs/a/layerkit.context", "status": "stale", "stale": ["Dockerfile"], "extra": ["leftover.txt"],
    }  # fmt: skip

    fixed = cli("check", "--fix")
    assert fixed.code == 0, fixed.err
    assert "envs/a/layerkit.context: rewrote 2 file(s)" in fixed.err
    assert cli("check").code == 0
    # What --fix wrote is byte for byte what `render -o` writes.
    ref = tmp_path / "ref"
    assert cli("-q", "render", A, "-o", ref).code == 0
    assert sorted(p.name for p in ctx.iterdir()) == sorted(p.name for p in ref.iterdir())
    for p in ref.iterdir():
        assert (ctx / p.name).read_bytes() == p.read_bytes()
    assert "MODE" in (ctx / "Dockerfile").read_text()


def test_explicit_context_dir(cli, repo: Path) -> None:
    out = repo / "docker" / "a"
    r = cli("check", A, "--context", out)
    assert r.code == 1 and "docker/a/Dockerfile: out of date" in r.err  # absent: every file is stale
    assert f"run `layerkit check --fix {A} --context docker/a`" in r.err
    assert cli("check", A, "--context", out, "--fix").code == 0
    assert cli("check", A, "--context", out).code == 0
    both = cli("check", A, B, "--context", out)
    assert both.code == 2 and "exactly one SPEC" in both.err


def test_bad_spec_is_exit_2_and_the_others_are_still_checked(cli, repo: Path) -> None:
    (repo / "envs" / "team.yaml").write_text("conda: {dependencies: [python=3.11]}\nbogus: 1\n")
    (repo / "envs" / "a" / "layerkit.conda-lock.yml").unlink()
    r = cli("check", "--json")
    assert r.code == 2
    errors = [ln for ln in lines(r.err) if ": error: " in ln]
    # Both roots extend the broken layer: each says where the problem is, no traceback.
    assert len(errors) == 2
    assert all(ln.startswith("envs/team.yaml:2:8: error: unknown key 'bogus'") for ln in errors)
    assert [s["error"] is not None for s in json.loads(r.out)["specs"]] == [True, True]


def test_outside_git_names_specs(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = cli("check")
    assert r.code == 2 and "not in a git work tree" in r.err and "SPEC" in r.err


def test_untracked_roots_are_not_discovered(cli, repo: Path) -> None:
    (repo / "c.layerkit.yaml").write_text("name: c\nbogus: 1\n")
    assert cli("check").code == 0
    git(repo, "add", "c.layerkit.yaml")
    assert cli("check").code == 2


def test_fresh_path_imports_no_solver_or_renderer(repo: Path) -> None:
    """A fresh lock proves its specs went through the solver's MatchSpec; a spec without one
    (B) is read by it (spec/grammar.py, issue 19), as `layerkit validate` reads it."""

    def probe(*specs: str) -> list[str]:
        code = (
            f"import sys\nfrom layerkit.cli import main\ncode = main(['-q', 'check', *{list(specs)!r}])\n"
            "print(code, sorted(m for m in ('conda_lock', 'rattler', 'jinja2') if m in sys.modules))"
        )
        proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
        return [proc.stdout, proc.stderr]

    out, err = probe(A)
    assert out.split(maxsplit=1) == ["0", "[]\n"], err
    out, err = probe()
    assert out.split(maxsplit=1) == ["0", "['rattler']\n"], err
