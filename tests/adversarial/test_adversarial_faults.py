"""Faults of the file system, the cache folder and the registry (issue 15 §3, "tracebacks
that exit 1"): each is one line and exit 3 (environment), never a traceback (1 is "check
failed"). Root ignores permission bits, so "unwritable" is a path under a regular file,
/proc, or an immutable folder (chattr +i) where the file system supports it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cases import assert_one_line_error, cache, faults, layerkit, secrets
from hostile_registry import SBOM_MODES, hostile_registry

SPEC = "name: s\nbase:\n  flavour: cpu-ubuntu22.04\nconda:\n  channels: [conda-forge]\n  dependencies: [python=3.11]\n"
# A base image on a loopback port nothing listens on: lock's base pin fails at once, offline.
LOCAL_BASE = "name: s\nbase:\n  image: 127.0.0.1:9/base:1\nconda:\n  channels: [conda-forge]\n  dependencies: [python=3.11]\n"
NO_DAEMON = "docker://unix:///nonexistent/layerkit-adversarial.sock"


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "immutable"
    folder.mkdir()
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False).returncode != 0:
        pytest.skip("this file system has no immutable attribute (chattr +i)")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


@faults
@pytest.mark.parametrize("target", ["/proc/layerkit-x", "file/ctx", "immutable/ctx", "immutable"])
def test_render_output_that_cannot_be_written(
    tmp_path: Path, target: str, request: pytest.FixtureRequest
) -> None:
    (tmp_path / "s.yaml").write_text(SPEC)
    (tmp_path / "file").write_text("a regular file\n")
    if target.startswith("immutable"):
        request.getfixturevalue("immutable")
    run = layerkit("render", "s.yaml", "-o", target, cwd=tmp_path)
    line = assert_one_line_error(run, 3)
    assert "file system:" in line, line


@faults
def test_lock_in_an_unwritable_folder(tmp_path: Path, immutable: Path) -> None:
    subprocess.run(["chattr", "-i", str(immutable)], check=True)
    (immutable / "s.yaml").write_text(LOCAL_BASE)
    subprocess.run(["chattr", "+i", str(immutable)], check=True)
    line = assert_one_line_error(layerkit("lock", "s.yaml", cwd=immutable), 3)
    assert "file system: Operation not permitted" in line


@cache
def test_unwritable_cache(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(LOCAL_BASE)
    (tmp_path / "file").write_text("a regular file\n")
    env = {"LAYERKIT_CACHE": str(tmp_path / "file" / "cache")}
    with hostile_registry("tags") as addr:  # answers "no such image": build goes on to its lock
        args = ["build", "s.yaml", "--registry", f"{addr}/x", "--addr", NO_DAEMON]
        run = layerkit(*args, cwd=tmp_path, env=env)
    line = assert_one_line_error(run, 3)
    assert line.startswith(f"{tmp_path / 'file' / 'cache'}/"), line
    assert "file system: Not a directory" in line


@cache
def test_lock_needs_no_cache(tmp_path: Path) -> None:
    """`lock` writes its solver shim and PyPI mapping into its own work folder, never the cache
    (tests/test_cache_trust.py): an unwritable cache is no error of lock's, whatever else is."""
    (tmp_path / "s.yaml").write_text(LOCAL_BASE)
    (tmp_path / "file").write_text("a regular file\n")
    run = layerkit("lock", "s.yaml", cwd=tmp_path, env={"LAYERKIT_CACHE": str(tmp_path / "file" / "cache")})
    assert "Traceback" not in run.err and str(tmp_path / "file") not in run.out + run.err
    assert (tmp_path / "file").read_text() == "a regular file\n"


REGISTRY_CASES = [
    ("token", ["plan"], "the token service's answer is not JSON"),
    ("token", ["build"], "the token service's answer is not JSON"),
    ("token", ["env", "list", "NAME"], "the token service's answer is not JSON"),
    ("content-length", ["plan"], "Content-Length: size 'notanint' is not a number"),
    ("content-length", ["build"], "Content-Length: size 'notanint' is not a number"),
    ("tags", ["env", "list", "NAME"], "tags/list is not JSON"),
    ("tags", ["env", "list"], "_catalog is not JSON"),
]


@faults
@pytest.mark.parametrize(
    ("mode", "command", "message"), REGISTRY_CASES, ids=[f"{m}-{'-'.join(c)}" for m, c, _ in REGISTRY_CASES]
)
def test_registry_answers_that_are_no_json(
    tmp_path: Path, mode: str, command: list[str], message: str
) -> None:
    (tmp_path / "s.yaml").write_text(SPEC)
    with hostile_registry(mode) as addr:
        if command[0] == "env":
            args = [*command[:2], *(["team-env"] if "NAME" in command else []), "--registry", f"{addr}/x"]
        else:
            args = [command[0], "s.yaml", "--registry", f"{addr}/x"]
            args += ["--addr", NO_DAEMON] if command[0] == "build" else []
        run = layerkit(*args, cwd=tmp_path)
    line = assert_one_line_error(run, 3)
    assert message in line, line


@faults
def test_manifest_that_is_no_json_is_refused() -> None:
    """image_size and copy read manifests: a non-JSON one is a RegistryError (exit 3)."""
    from layerkit.build.registry import ImageRef, RegistryClient
    from layerkit.errors import RegistryError

    with hostile_registry("manifest") as addr:
        host = addr
        client = RegistryClient()
        with pytest.raises(RegistryError, match="is not JSON"):
            client.image_size(ImageRef(host, "x/base", "1", None))
        with pytest.raises(RegistryError, match="is not JSON"):
            client.copy(ImageRef(host, "x/base", "1", None), ImageRef(host, "x/copy", "1", None))


@faults
def test_a_manifest_asked_by_digest_must_have_that_digest() -> None:
    """Reuse copies the digest the gate verified: a registry answering it with other bytes is
    refused before anything is put (the copy never tags what was not verified)."""
    from layerkit.build.registry import ImageRef, RegistryClient
    from layerkit.errors import RegistryError

    with hostile_registry("manifest") as addr:
        src = ImageRef(addr, "x/base", None, "sha256:" + "1" * 64)
        with pytest.raises(RegistryError, match="answered a manifest of another digest"):
            RegistryClient().copy(src, ImageRef(addr, "x/copy", "1", None))


SBOM_MESSAGES = {
    "sbom-layer-string": "'layers' is not a list of descriptors",
    "sbom-no-digest": "its layer's digest is not a sha256 digest",
    "sbom-bad-referrer": "an SBOM entry's digest is not a sha256 digest",
    "sbom-not-json": "is not JSON",
}


@faults
@pytest.mark.parametrize("mode", SBOM_MODES)
def test_sbom_referrers_of_the_wrong_shape_are_refused(mode: str) -> None:
    """`env show --sbom` reads referrers, their manifests and the document: each of the wrong
    shape is one RegistryError (exit 3), never an AttributeError or KeyError, and a digest
    that is none never reaches a URL."""
    from layerkit.envs import sbom
    from layerkit.envs.oci import OciClient
    from layerkit.errors import RegistryError

    with hostile_registry(mode) as addr, pytest.raises(RegistryError) as raised:
        sbom.image_sbom(OciClient(), f"{addr}/x/img:1")
    assert SBOM_MESSAGES[mode] in raised.value.message
    assert "\n" not in raised.value.message and "\x1b" not in raised.value.message


@faults
def test_env_show_sbom_of_a_document_that_is_not_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command parses the registry's blob again: not JSON is exit 3, one line."""
    from layerkit import api
    from layerkit.cli import main

    monkeypatch.setattr(api, "env_sbom", lambda *a, **k: b"\x1b[2J<html>")
    code = main(["env", "show", "demo", "--sbom", "--registry", "127.0.0.1:9/x"])
    err = capsys.readouterr().err
    assert code == 3 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and "the SBOM the registry holds is not JSON" in err


@secrets
def test_registry_fault_does_not_echo_the_credentials(tmp_path: Path) -> None:
    password = "hunter2-adversarial-secret"
    with hostile_registry("token") as addr:
        (tmp_path / "s.yaml").write_text(
            SPEC + f"registry:\n  address: {addr}/x\n  username_env: REG_USER\n  password_env: REG_PASS\n"
        )
        run = layerkit("plan", "s.yaml", cwd=tmp_path, env={"REG_USER": "ci", "REG_PASS": password})
    assert_one_line_error(run, 3)
    assert password not in run.err and password not in run.out
