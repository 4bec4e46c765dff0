"""The `serve:` section (issue 16 §1, §3, §5): defaults, merging across layers, and the limits
checked at validate time, each refusal one line at the offending value's file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from layerkit import api
from layerkit.cli import main
from layerkit.errors import SpecError
from layerkit.spec.serve import LIVENESS, READINESS, settings

ENV = "name: svc\nbase: {image: 'ubuntu:22.04'}\nuser_managed: true\n"


def _write(tmp_path: Path, text: str, name: str = "layerkit.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _checked(tmp_path: Path, text: str) -> api.Checked:
    return api.check_spec(_write(tmp_path, ENV + text))


def test_defaults_are_azures() -> None:
    s = settings(None)
    assert (s.port, s.max_request_mb, s.scoring_timeout_ms, s.max_concurrent_requests_per_replica) == (
        5001, 100, 60000, 1,
    )  # fmt: skip
    assert (s.liveness_route, s.readiness_route, s.scoring_route, s.auth) == ("/", "/", "/score", "key")
    assert (s.cpu_cores, s.memory_gb, s.gpu) == (0.1, 0.5, 0)
    assert (s.autoscale_enabled, s.autoscale_min_replicas, s.autoscale_max_replicas) == (True, 1, 10)
    assert s.autoscale_target_utilization == 70
    assert (LIVENESS.initial_delay_seconds, LIVENESS.failure_threshold) == (310, 3)  # v1 AKS
    assert (READINESS.initial_delay_seconds, READINESS.failure_threshold) == (10, 30)  # v2
    assert s.liveness_probe == LIVENESS and s.readiness_probe == READINESS


def test_num_replicas_alone_turns_autoscale_off(tmp_path: Path) -> None:
    s = settings(_checked(tmp_path, "serve: {num_replicas: 3}\n").resolved.spec.serve)
    assert (s.autoscale_enabled, s.num_replicas) == (False, 3)


def test_a_probe_setting_keeps_the_others_defaults(tmp_path: Path) -> None:
    text = "serve: {liveness_probe: {initial_delay_seconds: 0, period_seconds: 5}}\n"
    s = settings(_checked(tmp_path, text).resolved.spec.serve)
    assert s.liveness_probe.initial_delay_seconds == 0  # zero is a value, not "unset"
    assert s.liveness_probe.period_seconds == 5
    assert s.liveness_probe.timeout_seconds == LIVENESS.timeout_seconds


def test_serve_merges_across_layers(tmp_path: Path) -> None:
    _write(tmp_path, "serve: {cpu_cores: 2, memory_gb: 4, models: [{name: a, version: 1, path: a.pkl}]}\n",
           "team.yaml")  # fmt: skip
    root = _write(tmp_path, ENV + "extends: [team.yaml]\nserve:\n  entry_script: score.py\n"
                  "  models: [{name: b, path: b.onnx}]\n  memory_gb: 8\n")  # fmt: skip
    r = api.check_spec(root).resolved
    s = settings(r.spec.serve)
    assert (s.entry_script, s.cpu_cores, s.memory_gb) == ("score.py", 2, 8)
    assert [(m.name, m.version) for m in s.models] == [("a", "1"), ("b", None)]
    assert r.loc(("serve", "cpu_cores")).file.endswith("team.yaml")
    assert r.loc(("serve", "memory_gb")).file == str(root)


def _error(tmp_path: Path, text: str) -> SpecError:
    with pytest.raises(SpecError) as exc:
        _checked(tmp_path, text)
    return exc.value


@pytest.mark.parametrize(
    ("text", "line", "col", "words"),
    [
        ("serve:\n  auth: token\n", 5, 9, "identity service"),
        ("serve: {autoscale_enabled: false}\n", 4, 28, "set num_replicas"),
        ("serve: {autoscale_enabled: true, num_replicas: 2}\n", 4, 48, "remove num_replicas"),
        ("serve: {autoscale_min_replicas: 5, autoscale_max_replicas: 2}\n", 4, 33, "above"),
        ("serve: {scoring_route: score}\n", 4, 24, "write it as '/score'"),
        ("serve: {namespace: Prod_1}\n", 4, 20, "namespace"),
        ("serve: {memory_gb: 4, memory_gb_limit: 2}\n", 4, 40, "below the request"),
        (
            "serve: {models: [{name: m, version: 1, path: a}, {name: m, version: 1, path: b}]}\n",
            4,
            50,
            "twice",
        ),
        ("serve: {autoscale_target_utilization: 101}\n", 4, 39, "less than or equal to 100"),
        ("serve: {entry_scrip: score.py}\n", 4, 22, "did you mean 'entry_script'"),
    ],
)
def test_refusals_name_the_value(tmp_path: Path, text: str, line: int, col: int, words: str) -> None:
    err = _error(tmp_path, text)
    assert err.location is not None
    assert (err.location.line, err.location.col) == (line, col)
    assert words in err.message


def test_token_auth_is_one_line_with_the_alternative(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _write(tmp_path, ENV + "serve:\n  auth: token\n")
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{spec}:5:9: error: serve.auth: token auth") and "\n" not in err
    assert "auth: key" in err


def test_at_most_1000_models(tmp_path: Path) -> None:
    items = "".join(f"    - {{name: m{i}, path: m{i}.pkl}}\n" for i in range(1001))
    err = _error(tmp_path, "serve:\n  models:\n" + items)
    assert "1001 models" in err.message and "at most 1000" in err.message
    assert err.location is not None and err.location.line == 6 + 1000  # the 1001st item
    ok = "".join(f"    - {{name: m{i}, path: m{i}.pkl}}\n" for i in range(1000))
    assert len(settings(_checked(tmp_path, "serve:\n  models:\n" + ok).resolved.spec.serve).models) == 1000


def test_warnings_for_auth_off_and_a_payload_above_azures_cap(tmp_path: Path) -> None:
    checked = _checked(tmp_path, "serve: {auth: none, max_request_mb: 200}\n")
    assert any(":4:15: warning: key auth is off" in w for w in checked.warnings)
    assert any("200 MB is above Azure's 100 MB cap" in w for w in checked.warnings)
    assert not _checked(tmp_path, "serve: {max_request_mb: 50}\n").warnings


def test_autoscale_settings_while_autoscale_is_off_warn(tmp_path: Path) -> None:
    checked = _checked(tmp_path, "serve: {num_replicas: 2, autoscale_max_replicas: 9}\n")
    assert any("autoscale_max_replicas is not used while autoscale is off" in w for w in checked.warnings)
