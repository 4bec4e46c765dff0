"""Environment variables in channel URLs, without a daemon: what conda expands (an env file's
`channels:` only, `$NAME` and `${NAME}`: conda/env/env.py `_expand_channels` uses
os.path.expandvars), kept as written everywhere layerkit writes, and given to the build only
as a BuildKit secret (the session's Secrets service, read by install_env.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest
from fixtures_build import install_env_module

from layerkit import api
from layerkit.build import session as S
from layerkit.build._proto import buildkit_session_secrets_pb2 as secrets_pb
from layerkit.build.builder import build_secrets
from layerkit.errors import SpecError
from layerkit.hashing.content import definition
from layerkit.lock.explicit import parse_explicit
from layerkit.lock.model import Lock, LockedPackage
from layerkit.lock.solve import lock as run_lock
from layerkit.spec import channelvars as CV
from layerkit.spec.load import load_text
from layerkit.spec.merge import resolve
from layerkit.spec.validate import Checked, check

URL = "https://repo.example/t/${CONDA_TOKEN}/stable"


def checked(channels: list[str], extra: str = "") -> Checked:
    text = f"name: e\nconda:\n  channels: {json.dumps(channels)}\n  dependencies: [python=3.11]\n{extra}"
    return check(resolve(load_text(text, "spec.yaml")))


@pytest.mark.parametrize(
    "url",
    [
        URL,
        "https://repo.example/t/$CONDA_TOKEN/stable",
        "http://127.0.0.1:8000/${ORG}/${LABEL}",
        "https://${HOST}/c",
    ],
)
def test_channel_urls_with_variables_are_accepted_as_written(url: str) -> None:
    assert checked([url, "conda-forge"]).resolved.spec.conda.channels[0] == url  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("${CHANNEL}", "channel URLs only"),
        ("https://repo.example/t/${A-B}/c", "${NAME} or $NAME"),
        ("https://repo.example/t/$/c", "${NAME} or $NAME"),
        ("https://${USER}:${PASS}@repo.example/c", "user info are not supported"),
        ("https://repo.example/t/${TOKEN}/c d", "is not a channel"),
    ],
)
def test_other_dollars_are_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(SpecError) as err:
        checked([url])
    assert reason in err.value.message
    assert err.value.location is not None and err.value.location.line == 3


def test_names_mask_and_values() -> None:
    assert CV.names("https://h/$A/${B}/t/${A}") == ("A", "B")
    assert (
        CV.mask("GET https://h/t/tok-1/x failed (tok-1)", {"T": "tok-1"})
        == "GET https://h/t/${T}/x failed (${T})"
    )
    assert CV.values(["T"], None, "build", {"T": "v"}) == {"T": "v"}
    with pytest.raises(SpecError, match=r"\$\{T\}, which is not set: export T before `layerkit build`"):
        CV.values(["T"], None, "build", {"T": ""})
    with pytest.raises(SpecError, match="single line"):
        CV.values(["T"], None, "lock", {"T": "a\nb"})


def test_the_hash_covers_the_url_but_never_the_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    """Schema 2: the token's value and its variable's name are credentials, normalised out of
    the hash (hashing/normalise.py); the channel's host and path stay in it."""
    monkeypatch.setenv("CONDA_TOKEN", "tok-secret-1")
    first = api.hash_spec(checked([URL]), auto_lock=False)
    monkeypatch.setenv("CONDA_TOKEN", "tok-secret-2")
    second = api.hash_spec(checked([URL]), auto_lock=False)
    assert first.hash == second.hash
    env_file = definition(checked([URL]), "linux-64").context["environment.yml"]
    assert "https://repo.example/t/${" in env_file and "tok-secret" not in json.dumps(first.parts) + env_file
    renamed = api.hash_spec(checked(["https://repo.example/t/${OTHER}/stable"]), auto_lock=False)
    assert renamed.hash == first.hash
    moved = api.hash_spec(checked(["https://repo.example/t/${CONDA_TOKEN}/beta"]), auto_lock=False)
    assert moved.hash != first.hash


def tokened_lock() -> Lock:
    pkg = LockedPackage(
        manager="conda", platform="linux-64", name="python", version="3.11.9", build="h0_0",
        url="https://repo.example/t/${CONDA_TOKEN}/stable/linux-64/python-3.11.9-h0_0.conda", md5="0" * 32,
    )  # fmt: skip
    return Lock(source="spec.conda-lock.yml", packages=(pkg,))


def test_the_install_run_mounts_one_secret_per_variable_and_the_context_keeps_the_placeholder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONDA_TOKEN", "tok-secret-1")
    for lk in (None, tokened_lock()):
        r = api.render(checked([URL]), lock=lk, auto_lock=False)
        run = next(ln for ln in r.dockerfile.splitlines() if "install_env.py --prefix" in ln)
        assert "--mount=type=secret,id=CONDA_TOKEN /opt/installer/bin/python install_env.py" in run
        assert r.dockerfile.count("CONDA_TOKEN") == 1  # not an ARG, not an ENV
        text = "".join(str(v) for v in r.files.values())
        assert "${CONDA_TOKEN}" in text and "tok-secret" not in text + r.dockerfile
        assert build_secrets(r) == {"CONDA_TOKEN": b"tok-secret-1"}
    plain = api.render(checked(["conda-forge"]), auto_lock=False)
    assert "type=secret" not in plain.dockerfile and build_secrets(plain) == {}


def test_a_build_without_the_variable_says_which_and_where(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONDA_TOKEN", raising=False)
    r = api.render(checked([URL]), auto_lock=False)
    with pytest.raises(SpecError, match="export CONDA_TOKEN before `layerkit build`") as err:
        build_secrets(r)
    assert err.value.location is not None and err.value.location.file == "spec.yaml"


def test_conda_and_micromamba_installers_are_refused_for_tokenized_channels() -> None:
    with pytest.raises(SpecError, match="need the rattler installer") as err:
        api.render(checked([URL], "  installer: micromamba\n"), auto_lock=False)
    assert err.value.location is not None


def test_locking_without_the_variable_fails_before_solving(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CONDA_TOKEN", raising=False)
    with pytest.raises(SpecError, match="export CONDA_TOKEN before `layerkit lock`"):
        run_lock(checked([URL]), tmp_path / "x.conda-lock.yml", solver="/bin/false")


def test_explicit_files_with_placeholders_are_read() -> None:
    text = "@EXPLICIT\n" + tokened_lock().packages[0].url + "#" + "0" * 32 + "\n"
    assert parse_explicit(text, "x.txt").packages[0].url.count("${CONDA_TOKEN}") == 1
    with pytest.raises(SpecError, match="not a package URL"):
        parse_explicit("@EXPLICIT\nhttps://h/t/$(id)/linux-64/a-1-0.conda\n", "x.txt")


class _Context:
    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None

    def abort(self, code: grpc.StatusCode, details: str) -> Any:
        self.code = code
        raise RuntimeError(details)


def test_the_session_serves_secrets_by_id_and_announces_getsecret() -> None:
    assert "/moby.buildkit.secrets.v1.Secrets/GetSecret" in S._METHODS
    service = S._Secrets({"CONDA_TOKEN": b"v"})
    ctx = _Context()
    got = service.GetSecret(secrets_pb.GetSecretRequest(ID="CONDA_TOKEN"), ctx)  # type: ignore[arg-type]
    assert got.data == b"v"
    with pytest.raises(RuntimeError, match="secret other not found"):
        service.GetSecret(secrets_pb.GetSecretRequest(ID="other"), ctx)  # type: ignore[arg-type]
    assert ctx.code == grpc.StatusCode.NOT_FOUND


def test_install_env_reads_the_secret_file_and_puts_the_placeholder_back(tmp_path: Path) -> None:
    ie = install_env_module()
    ie.SECRETS_DIR = str(tmp_path / "secrets")
    with pytest.raises(SystemExit, match="no secret CONDA_TOKEN"):
        ie.expand(URL)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "CONDA_TOKEN").write_text("tok-9\n")
    assert ie.expand(URL) == "https://repo.example/t/tok-9/stable"
    assert ie.expand("https://h/$CONDA_TOKEN/x") == "https://h/tok-9/x"
    meta = tmp_path / "prefix" / "conda-meta"
    meta.mkdir(parents=True)
    (meta / "python-3.11.9-h0_0.json").write_text('{"url": "https://repo.example/t/tok-9/stable/x.conda"}')
    ie._mask_prefix(str(tmp_path / "prefix"))
    assert "${CONDA_TOKEN}" in (meta / "python-3.11.9-h0_0.json").read_text()
    assert (
        ie.mask("403 for https://repo.example/t/tok-9/") == "403 for https://repo.example/t/${CONDA_TOKEN}/"
    )
