"""Issue 19: pip index credentials (`pip-repositories` with $NAME, `--index-url
https://${USER}:${PASS}@host/simple`) reach the build as BuildKit secrets of the pip RUN only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from layerkit import api
from layerkit.build._proto import buildkit_control_pb2 as control
from layerkit.build.builder import build_secrets
from layerkit.build.client import _mask_logs
from layerkit.errors import SpecError

USER, PASSWORD = "deploy-user-1f3a", "s3cret-9c2e"
ENV_YML = (
    "channels:\n  - conda-forge\nallow-pypi-requests: false\n"
    "pip-repositories:\n  - http://$PIP_USER:$PIP_PASSWORD@pypi.internal:8080/simple\n"
    "dependencies:\n  - python=3.11\n  - pip\n  - pip:\n    - tinypip==1.0\n"
)


def test_the_pip_run_mounts_each_variable_and_no_value_is_rendered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIP_USER", USER)
    monkeypatch.setenv("PIP_PASSWORD", PASSWORD)
    spec = tmp_path / "environment.yml"
    spec.write_text(ENV_YML)
    rendered = api.render(spec)
    df = rendered.dockerfile
    pip_run = next(ln for ln in df.splitlines() if "--mount=type=secret,id=PIP_USER" in ln)
    assert "--mount=type=secret,id=PIP_PASSWORD" in pip_run
    # Filled into a tmpfs copy of the file, never exported: pip takes PIP_* variables as options.
    assert "--mount=type=tmpfs,target=/run/layerkit-pip python3 expand_secrets.py requirements.txt" in pip_run
    assert "export" not in pip_run and "-r /run/layerkit-pip/requirements.txt" in df
    assert not [ln for ln in df.splitlines() if ln.startswith(("ARG", "ENV")) and "PIP_" in ln]
    assert df.count("--mount=type=secret") == 2  # the pip RUN only
    reqs = rendered.files["requirements.txt"]
    assert reqs.startswith("--index-url http://${PIP_USER}:${PIP_PASSWORD}@pypi.internal:8080/simple\n")
    everything = df + json.dumps(rendered.files, default=str) + json.dumps(rendered.hash.parts, default=str)
    assert USER not in everything and PASSWORD not in everything
    assert build_secrets(rendered) == {"PIP_USER": USER.encode(), "PIP_PASSWORD": PASSWORD.encode()}


def test_a_build_without_the_variables_names_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIP_USER", raising=False)
    monkeypatch.setenv("PIP_PASSWORD", PASSWORD)
    spec = tmp_path / "environment.yml"
    spec.write_text(ENV_YML)
    with pytest.raises(
        SpecError, match=r"a pip index URL uses \$\{PIP_USER\}, which is not set: export PIP_USER"
    ):
        build_secrets(api.render(spec))


def test_step_logs_show_each_secret_as_its_name() -> None:
    resp = control.StatusResponse()
    resp.logs.add(vertex="v", msg=f"Looking in indexes: http://{USER}:****@pypi.internal/simple\n".encode())
    _mask_logs(resp, {"PIP_USER": USER.encode(), "PIP_PASSWORD": PASSWORD.encode()})
    assert resp.logs[0].msg == b"Looking in indexes: http://${PIP_USER}:****@pypi.internal/simple\n"


def test_expand_secrets_fills_each_name_from_its_secret_file(tmp_path: Path) -> None:
    """The script the pip RUN runs: ${NAME}s from SECRETS_DIR/NAME, nothing else touched."""
    import subprocess
    import sys

    from layerkit.resources import data_dir

    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "PIP_USER").write_text(USER + "\n")
    (secrets / "PIP_PASSWORD").write_text(PASSWORD)
    src = tmp_path / "requirements.txt"
    src.write_text(
        "--index-url http://${PIP_USER}:${PIP_PASSWORD}@pypi.internal/simple\nsix==1.16.0 ${OTHER}\n"
    )
    out = tmp_path / "out.txt"
    script = str(data_dir("templates") / "expand_secrets.py")
    subprocess.run(
        [sys.executable, script, str(src), str(out), str(secrets), "PIP_USER", "PIP_PASSWORD"], check=True
    )
    assert out.read_text() == (
        f"--index-url http://{USER}:{PASSWORD}@pypi.internal/simple\nsix==1.16.0 ${{OTHER}}\n"
    )
