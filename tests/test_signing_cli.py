"""`build --sign` / `--require-signature` refuse before any build: a key that is not a file
is bad input (exit 2, one line); no cosign is an environment failure (exit 3) naming how to
get it. Nothing here reaches a daemon or registry: the checks come first."""

from __future__ import annotations

from pathlib import Path

import pytest

from layerkit.build.signing import COSIGN_ENV

SPEC = "name: f\nversion: '1'\nbase: {image: 'ubuntu:22.04'}\nregistry: {address: '127.0.0.1:1'}\n"


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAYERKIT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "layerkit.yaml"
    path.write_text(SPEC)
    return path


def test_a_sign_key_that_is_not_a_file_is_exit_2(cli, spec: Path) -> None:
    r = cli("build", spec, "--no-lock", "--sign", spec.parent / "missing.key")
    assert r.code == 2 and r.out == ""
    lines = [ln for ln in r.err.splitlines() if "missing.key" in ln]
    assert len(lines) == 1 and "--sign key" in lines[0] and "is not a file" in lines[0]


def test_no_cosign_is_exit_3(cli, spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = spec.parent / "cosign.key"
    key.write_text("not read: cosign is missing first")
    monkeypatch.delenv(COSIGN_ENV, raising=False)
    monkeypatch.setenv("PATH", str(spec.parent / "empty-bin"))
    r = cli("build", spec, "--no-lock", "--sign", key)
    assert r.code == 3 and "signing needs cosign" in r.err and "cosign.sh" in r.err


def test_help_names_the_options(cli, capsys: pytest.CaptureFixture[str]) -> None:
    from layerkit.cli import main

    for command, options in (
        ("build", ("--sign", "--require-signature")),
        ("plan", ("--require-signature",)),
    ):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert all(o in text for o in options), command


def test_a_require_signature_key_that_is_not_a_file_is_exit_2(cli, spec: Path) -> None:
    for command in ("build", "plan"):
        r = cli(command, spec, "--no-lock", "--require-signature", spec.parent / "missing.pub")
        assert r.code == 2 and r.out == "", command
        assert "--require-signature key" in r.err and "is not a file" in r.err, command


def test_the_spec_setting_is_relative_to_its_layer_and_has_a_position(cli, spec: Path) -> None:
    """registry.require_signature in a site layer elsewhere: its key is looked up beside
    that layer; a missing one is bad input at the setting's line."""
    from layerkit import api
    from layerkit.build.signing import required_key

    site = spec.parent / "site" / "site.yaml"
    site.parent.mkdir()
    site.write_text("registry:\n  address: '127.0.0.1:1'\n  require_signature: keys/cosign.pub\n")
    spec.write_text(SPEC.replace("registry: {address: '127.0.0.1:1'}\n", "extends: [site/site.yaml]\n"))
    r = cli("plan", spec, "--no-lock")
    assert r.code == 2 and f"{site}:3" in r.err and "keys/cosign.pub" in r.err
    (site.parent / "keys").mkdir()
    (site.parent / "keys" / "cosign.pub").write_text("a key")
    rendered = api.render(spec, None, None, False)
    assert required_key(rendered, None) == str(site.parent / "keys" / "cosign.pub")
    assert required_key(rendered, str(site)) == str(site)  # the option wins
