"""`layerkit run`: build or reuse the image, run a command with the source mounted (a real
dockerd), ignore file honoured, output streamed, the command's exit code returned."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fixtures_services import Services

from layerkit.build.runner import masked_paths

SCRIPT = """\
import os, sys
print("train", sys.argv[1:], open("data/keep.txt").read().strip())
print("secret:", repr(open("secret.env").read()) if os.path.exists("secret.env") else "absent")
print("checkpoints:", sorted(os.listdir("checkpoints")))
print("to stderr", file=sys.stderr)
open("out/result.txt", "w").write("written in the container")
sys.exit(int(os.environ.get("CODE", "0")))
"""


def _source(tmp: Path) -> Path:
    src = tmp / "src"
    (src / "data").mkdir(parents=True)
    (src / "checkpoints").mkdir()
    (src / "out").mkdir()
    (src / "train.py").write_text(SCRIPT)
    (src / "data" / "keep.txt").write_text("kept data\n")
    (src / "checkpoints" / "big.ckpt").write_bytes(b"x" * 1024)
    (src / "secret.env").write_text("TOKEN=do-not-mount\n")
    (src / ".layerkitignore").write_text("checkpoints/\n*.env\n")
    for d in (src, src / "out"):
        d.chmod(0o777)  # the image runs as its non-root runtime user
    return src


def test_masked_paths_hide_ignored_directories_whole_and_files_one_by_one(tmp_path: Path) -> None:
    src = _source(tmp_path)
    assert masked_paths(src, ["checkpoints/", "*.env"]) == [("checkpoints", True), ("secret.env", False)]
    # A `!` rule may re-include something below an ignored directory: look inside it.
    assert masked_paths(src, ["checkpoints", "!checkpoints/keep.me"]) == [("checkpoints/big.ckpt", False)]
    assert masked_paths(src, []) == []


def test_run_without_a_command_is_bad_input(cli, tmp_path: Path) -> None:
    spec = tmp_path / "layerkit.yaml"
    spec.write_text("name: r\nbase: {image: 'localhost:5000/debian:bookworm'}\nuser_managed: true\n")
    r = cli("run", spec)
    assert r.code == 2 and "no command to run" in r.err


@pytest.mark.integration
def test_run_streams_output_hides_ignored_files_and_returns_the_exit_code(
    cli, services: Services, tmp_path: Path
) -> None:
    src = _source(tmp_path)
    spec = tmp_path / "layerkit.yaml"
    spec.write_text(
        f"name: runtest\nbase: {{image: '{services.base_image}'}}\nuser_managed: true\n"
        "runtime: {workdir: /work/project}\n"
    )
    common = ["--addr", f"docker://{services.docker_host}", "--network", "none", "--run-network", "none"]
    common += ["--progress", "plain", "--source", str(src)]
    r = cli("run", spec, *common, "-e", "CODE=7", "--", "python3", "train.py", "--epochs", "2")
    assert r.code == 7, r.err
    assert "train ['--epochs', '2'] kept data" in r.out
    assert "secret: ''" in r.out  # the ignored file is /dev/null inside
    assert "checkpoints: []" in r.out  # the ignored directory is an empty tmpfs
    assert "to stderr" in r.err and "to stderr" not in r.out
    assert (src / "out" / "result.txt").read_text() == "written in the container"
    assert (src / "checkpoints" / "big.ckpt").stat().st_size == 1024  # untouched on the host
    assert "built" in r.err

    # Second run: the image is reused (no build), exit 0 passes through.
    r = cli("run", spec, *common, "--", "python3", "train.py")
    assert r.code == 0, r.err
    assert "found" in r.err


def test_unreadable_ignore_file_is_bad_input(tmp_path: Path) -> None:
    from layerkit.build.runner import ignore_patterns
    from layerkit.errors import SpecError

    (tmp_path / ".layerkitignore").write_bytes(b"\xff\xfe not utf-8\n")
    with pytest.raises(SpecError, match="cannot read the ignore file"):
        ignore_patterns(tmp_path)


WHOAMI = """\
import os
print("ids", os.getuid(), os.getgid())
open("made-here.txt", "w").write("mine")
"""


def _owned_source(tmp: Path, uid: int) -> Path:
    src = tmp / "owned"
    src.mkdir()
    (src / "whoami.py").write_text(WHOAMI)
    for p in (src, src / "whoami.py"):
        os.chown(p, uid, uid)
    src.chmod(0o755)  # writable by its owner only, as a checkout is
    return src


@pytest.mark.integration
def test_run_is_the_invoking_user_so_it_writes_into_the_source_and_user_overrides_it(
    cli, services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 12 §3: the image's user (uid 1000) hit `Permission denied` in a checkout it does
    # not own. The invoker here is uid:gid 4242:4242, as a developer's login would be.
    monkeypatch.setattr(os, "getuid", lambda: 4242)
    monkeypatch.setattr(os, "getgid", lambda: 4242)
    src = _owned_source(tmp_path, 4242)
    spec = tmp_path / "layerkit.yaml"
    spec.write_text(f"name: owner\nbase: {{image: '{services.base_image}'}}\nuser_managed: true\n")
    common = ["--addr", f"docker://{services.docker_host}", "--network", "none", "--run-network", "none"]
    common += ["--progress", "quiet", "--source", str(src)]
    r = cli("run", spec, *common, "--", "python3", "whoami.py")
    assert r.code == 0, r.err
    assert "ids 4242 4242" in r.out
    made = src / "made-here.txt"
    assert made.read_text() == "mine" and (made.stat().st_uid, made.stat().st_gid) == (4242, 4242)

    made.unlink()
    r = cli("run", spec, *common, "--user", "1000:1000", "--", "python3", "whoami.py")
    assert r.code != 0 and "ids 1000 1000" in r.out and "Permission denied" in r.err
    assert not made.exists()


@pytest.mark.integration
def test_an_engine_without_a_bridge_network_names_the_network_options(
    cli, services: Services, tmp_path: Path
) -> None:
    # The test dockerd runs with --bridge=none, as some CI and rootless engines do.
    spec = tmp_path / "layerkit.yaml"
    spec.write_text(
        f"name: bridgeless\nbase: {{image: '{services.base_image}'}}\nuser_managed: true\n"
        "steps: [{run: 'echo bridgeless'}]\n"
    )
    addr = ["--addr", f"docker://{services.docker_host}", "--progress", "quiet", "--no-push"]
    r = cli("build", spec, *addr)
    assert r.code == 3, r.err
    assert "network bridge not found" in r.err and "--network host" in r.err and "--network none" in r.err
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1

    # `run` itself is not affected: the engine gives its container no network there.
    r = cli("run", spec, *addr, "--network", "none", "--source", str(tmp_path), "--", "true")
    assert r.code == 0, r.err
