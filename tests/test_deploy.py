"""`layerkit deploy` (issue 16 §3, §4): capacity math, and Kubernetes manifests checked against
Kubernetes' own JSON schemas (PyPI kubernetes-validate, offline) and Knative's annotation rules.
No cluster runs here: the manifests are checked, not applied."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from layerkit.cli import main
from layerkit.deploy.capacity import replicas_needed

K8S = "1.37"
IMAGE = "registry.example.com/ml/churn@sha256:" + "a" * 64
ENV = "name: churn_scorer\nbase: {image: 'ubuntu:22.04'}\nuser_managed: true\n"


@pytest.mark.parametrize(
    ("rps", "seconds", "utilization", "per_replica", "replicas"),
    [
        (20, 10, 70, 1, 286),  # the requirements' example: 200 in flight / 0.7
        (7, 10, 70, 1, 100),  # exactly 100: float arithmetic would say 101
        (30, 2, 80, 3, 25),  # exactly 25
        (100, 0.5, 70, 4, 18),  # 50 in flight / 0.7 / 4 = 17.86
        (0.1, 0.1, 50, 1, 1),  # any load needs one replica
        (1000, 0.05, 100, 10, 5),
    ],
)
def test_replicas_needed(
    rps: float, seconds: float, utilization: int, per_replica: int, replicas: int
) -> None:
    assert replicas_needed(rps, seconds, utilization, per_replica) == replicas


def _spec(tmp_path: Path, serve: str = "") -> Path:
    path = tmp_path / "layerkit.yaml"
    path.write_text(ENV + (f"serve:\n{serve}" if serve else ""))
    return path


def test_plan_prints_the_replicas_and_warns_above_the_maximum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(tmp_path, "  autoscale_max_replicas: 100\n")
    assert main(["deploy", "plan", str(spec), "--rps", "20", "--request-seconds", "10"]) == 0
    out, err = capsys.readouterr()
    assert out == "286\n"
    assert f"{spec}:5:27: warning: 286 replicas needed, above autoscale_max_replicas 100" in err
    assert main(["deploy", "plan", str(spec), "--rps", "2", "--request-seconds", "10", "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert (doc["replicas"], doc["available_replicas"], doc["enough"]) == (29, 100, True)
    assert (doc["target_utilization"], doc["max_concurrent_requests_per_replica"]) == (70, 1)
    assert "warning" not in err


def test_plan_with_fixed_replicas_compares_num_replicas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(tmp_path, "  num_replicas: 3\n  max_concurrent_requests_per_replica: 2\n")
    assert main(["deploy", "plan", str(spec), "--rps", "10", "--request-seconds", "1", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["replicas"] == 8 and "above num_replicas 3" in err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["deploy", "plan", "SPEC", "--rps", "1"], "needs --rps R and --request-seconds S"),
        (["deploy", "plan", "SPEC", "--rps", "0", "--request-seconds", "1"], "above 0"),
        (
            ["deploy", "plan", "SPEC", "--rps", "1", "--request-seconds", "1", "--image", "x"],
            "--image belongs",
        ),
        (["deploy", "SPEC", "-o", "DIR"], "needs -o DIR and --image REF"),
        (
            ["deploy", "SPEC", "-o", "DIR", "--image", "x", "--rps", "3"],
            "--rps belongs to `layerkit deploy plan`",
        ),
        (["deploy", "plan"], "give one SPEC"),
        (["deploy", "plan", "SPEC", "--rps", "1", "--request-seconds", "1", "--name", "x"], "--name belongs"),
        (["deploy", "keys", "SPEC", "-o", "DIR"], "-o belongs to `layerkit deploy SPEC`"),
        (["deploy", "SPEC", "-o", "DIR", "--image", "not a ref"], "not a valid image reference"),
        (["deploy", "SPEC", "-o", "DIR", "--image", "x", "--name", "Bad_Name"], "--name 'Bad_Name'"),
    ],
)
def test_usage_errors_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    spec = str(_spec(tmp_path))
    argv = [spec if a == "SPEC" else str(tmp_path / "out") if a == "DIR" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err


def _deploy(tmp_path: Path, serve: str, *extra: str) -> tuple[Path, dict[str, dict[str, object]]]:
    out = tmp_path / "k8s"
    spec = _spec(tmp_path, serve)
    code = main(["deploy", str(spec), "-o", str(out), "--image", IMAGE, *extra])
    assert code == 0
    y = YAML(typ="safe")
    docs = {p.name: y.load(p.read_text()) for p in sorted(out.iterdir())}
    return out, docs


def _core(doc: object) -> None:
    assert isinstance(doc, dict)
    kubernetes_validate.validate(doc, K8S, strict=True)


# Knative's own rules for these annotations (knative.dev/serving pkg/apis/autoscaling,
# annotation_validation.go): value checks per key.
def _duration_seconds(text: str) -> float:
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    assert m and text, f"not a Go duration: {text}"
    h, mi, s = (int(g or 0) for g in m.groups())
    return h * 3600 + mi * 60 + s


KNATIVE_ANNOTATIONS = {
    "autoscaling.knative.dev/class": lambda v: (
        v in ("kpa.autoscaling.knative.dev", "hpa.autoscaling.knative.dev")
    ),
    "autoscaling.knative.dev/metric": lambda v: v == "concurrency",  # the KPA metric Azure's rule maps to
    "autoscaling.knative.dev/target": lambda v: float(v) >= 0.01,
    "autoscaling.knative.dev/target-utilization-percentage": lambda v: 1 <= float(v) <= 100,
    "autoscaling.knative.dev/min-scale": lambda v: int(v) >= 0,
    "autoscaling.knative.dev/max-scale": lambda v: int(v) >= 0,
    "autoscaling.knative.dev/scale-down-delay": lambda v: 0 <= _duration_seconds(v) <= 3600,
}


def _knative(doc: dict[str, object]) -> tuple[dict[str, str], dict[str, object]]:
    """The Service's annotations (checked by table) and its pod spec (checked as a core Pod)."""
    assert (doc["apiVersion"], doc["kind"]) == ("serving.knative.dev/v1", "Service")
    template = doc["spec"]["template"]  # type: ignore[index]
    annotations: dict[str, str] = template["metadata"]["annotations"]
    assert set(annotations) == set(KNATIVE_ANNOTATIONS)
    for key, ok in KNATIVE_ANNOTATIONS.items():
        assert isinstance(annotations[key], str) and ok(annotations[key]), (key, annotations[key])
    assert int(annotations["autoscaling.knative.dev/min-scale"]) <= int(
        annotations["autoscaling.knative.dev/max-scale"]
    )
    spec = dict(template["spec"])
    # Knative's RevisionSpec = a core PodSpec + these fields.
    knative_only = {k: spec.pop(k) for k in ("containerConcurrency", "timeoutSeconds")}
    _core({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
    return annotations, {**knative_only, **spec}


def test_default_is_a_knative_service_with_azures_autoscale_rule(tmp_path: Path) -> None:
    serve = ("  max_concurrent_requests_per_replica: 4\n  autoscale_min_replicas: 2\n  autoscale_max_replicas: 30\n"
             "  autoscale_target_utilization: 60\n  scoring_timeout_ms: 90500\n  namespace: ml\n")  # fmt: skip
    _, docs = _deploy(tmp_path, serve)
    assert sorted(docs) == ["knative-service.yaml", "kustomization.yaml"]
    kustomization = docs["kustomization.yaml"]
    assert kustomization["resources"] == ["knative-service.yaml"] and kustomization["namespace"] == "ml"
    annotations, spec = _knative(docs["knative-service.yaml"])
    assert annotations["autoscaling.knative.dev/class"] == "kpa.autoscaling.knative.dev"
    assert annotations["autoscaling.knative.dev/target"] == "4"
    assert annotations["autoscaling.knative.dev/target-utilization-percentage"] == "60"
    assert (annotations["autoscaling.knative.dev/min-scale"], annotations["autoscaling.knative.dev/max-scale"]) == (
        "2", "30",
    )  # fmt: skip
    assert annotations["autoscaling.knative.dev/scale-down-delay"] == "1m"
    assert (spec["containerConcurrency"], spec["timeoutSeconds"]) == (4, 91)
    assert docs["knative-service.yaml"]["metadata"]["name"] == "churn-scorer"  # from the spec's name


def test_probes_resources_and_gpu(tmp_path: Path) -> None:
    serve = ("  port: 8080\n  liveness_route: /live\n  readiness_route: /ready\n  cpu_cores: 1.5\n  memory_gb: 2.5\n"
             "  cpu_cores_limit: 2\n  gpu: 2\n  liveness_probe: {initial_delay_seconds: 5, failure_threshold: 6}\n")  # fmt: skip
    _, docs = _deploy(tmp_path, serve)
    _, spec = _knative(docs["knative-service.yaml"])
    (container,) = spec["containers"]  # type: ignore[misc]
    assert container["ports"] == [{"containerPort": 8080, "name": "http1", "protocol": "TCP"}]
    live, ready = container["livenessProbe"], container["readinessProbe"]
    assert live == {"httpGet": {"path": "/live", "port": 8080}, "initialDelaySeconds": 5, "periodSeconds": 10,
                    "timeoutSeconds": 2, "failureThreshold": 6}  # fmt: skip
    assert ready["httpGet"] == {"path": "/ready", "port": 8080} and ready["failureThreshold"] == 30
    assert container["resources"] == {"requests": {"cpu": "1500m", "memory": "2560Mi"},
                                      "limits": {"cpu": "2000m", "nvidia.com/gpu": 2}}  # fmt: skip
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_hpa_fallback_is_deployment_service_and_hpa_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, docs = _deploy(tmp_path, "  autoscale_max_replicas: 7\n", "--autoscaler", "hpa")
    err = capsys.readouterr().err
    assert "scales on CPU use, not on busy replicas as Azure does" in err
    assert sorted(docs) == ["deployment.yaml", "hpa.yaml", "kustomization.yaml", "service.yaml"]
    assert docs["kustomization.yaml"]["resources"] == ["deployment.yaml", "hpa.yaml", "service.yaml"]
    for name in ("deployment.yaml", "hpa.yaml", "service.yaml"):
        _core(docs[name])
    hpa = docs["hpa.yaml"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 7)  # type: ignore[index]
    # The HPA owns the scale: a replicas field would reset it at every `kubectl apply`.
    assert "replicas" not in docs["deployment.yaml"]["spec"]  # type: ignore[operator]
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 60  # type: ignore[index]
    pod = docs["deployment.yaml"]["spec"]["template"]["spec"]  # type: ignore[index]
    assert pod["containers"][0]["ports"][0]["name"] == "http"
    assert docs["service.yaml"]["spec"]["ports"][0]["targetPort"] == "http"  # type: ignore[index]


def test_autoscale_off_fixes_the_replicas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, docs = _deploy(tmp_path, "  num_replicas: 4\n")
    annotations, _ = _knative(docs["knative-service.yaml"])
    assert (
        annotations["autoscaling.knative.dev/min-scale"]
        == annotations["autoscaling.knative.dev/max-scale"]
        == "4"
    )
    _, docs = _deploy(tmp_path, "  num_replicas: 4\n", "--autoscaler", "hpa")
    assert "hpa.yaml" not in docs and "knative-service.yaml" not in docs  # switching removes the other
    assert docs["deployment.yaml"]["spec"]["replicas"] == 4  # type: ignore[index]
    assert "scales on CPU" not in capsys.readouterr().err  # nothing scales, nothing to warn about


def test_keys_never_land_in_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, docs = _deploy(tmp_path, "  entry_script: score.py\n")
    _, spec = _knative(docs["knative-service.yaml"])
    assert spec["volumes"] == [{"name": "keys", "secret": {"secretName": "churn-scorer-keys", "items": [
        {"key": "primary", "path": "primary"}, {"key": "secondary", "path": "secondary"}]}}]  # fmt: skip
    capsys.readouterr()
    spec_path = str(tmp_path / "layerkit.yaml")
    assert main(["deploy", "keys", spec_path]) == 0
    first = capsys.readouterr().out
    assert main(["deploy", "keys", spec_path]) == 0
    second = capsys.readouterr().out
    secret = YAML(typ="safe").load(first)
    _core(secret)
    assert secret["metadata"]["name"] == "churn-scorer-keys"
    keys = secret["stringData"]
    assert set(keys) == {"primary", "secondary"} and keys["primary"] != keys["secondary"]
    assert all(len(k) >= 43 for k in keys.values())  # 32 random bytes
    assert YAML(typ="safe").load(second)["stringData"] != keys  # new keys every time
    written = "".join(p.read_text() for p in out.iterdir())
    assert not any(k in written for k in keys.values()) and "kind: Secret" not in written


def test_keys_keep_an_earlier_secret_and_rotate_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import base64

    _deploy(tmp_path, "")
    spec = str(tmp_path / "layerkit.yaml")
    capsys.readouterr()
    assert main(["deploy", "keys", spec]) == 0
    saved = tmp_path / "secret.yaml"
    saved.write_text(capsys.readouterr().out)
    old = YAML(typ="safe").load(saved.read_text())["stringData"]
    assert main(["deploy", "keys", spec, "--keep", str(saved)]) == 0
    assert YAML(typ="safe").load(capsys.readouterr().out)["stringData"] == old
    assert main(["deploy", "keys", spec, "--keep", str(saved), "--rotate", "secondary"]) == 0
    new = YAML(typ="safe").load(capsys.readouterr().out)["stringData"]
    assert new["primary"] == old["primary"] and new["secondary"] != old["secondary"]
    # As `kubectl get secret -o yaml` prints it: base64 under data.
    fetched = tmp_path / "fetched.yaml"
    data = {k: base64.b64encode(v.encode()).decode() for k, v in old.items()}
    fetched.write_text(f"apiVersion: v1\nkind: Secret\ndata: {data}\n".replace("'", '"'))
    assert main(["deploy", "keys", spec, "--keep", str(fetched), "--rotate", "primary"]) == 0
    new = YAML(typ="safe").load(capsys.readouterr().out)["stringData"]
    assert new["secondary"] == old["secondary"] and new["primary"] != old["primary"]
    for args, message in (
        (["--rotate", "primary"], "--rotate needs --keep FILE"),
        (["--keep", spec], "not a Kubernetes Secret"),
    ):
        assert main(["deploy", "keys", spec, *args]) == 2
        assert message in capsys.readouterr().err
    assert (
        main(["deploy", spec, "-o", str(tmp_path / "o"), "--image", "r.example/x:1", "--keep", str(saved)])
        == 2
    )
    assert "--keep belongs to `layerkit deploy keys`" in capsys.readouterr().err


def test_auth_none_mounts_no_keys_and_has_none_to_print(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, docs = _deploy(tmp_path, "  auth: none\n")
    _, spec = _knative(docs["knative-service.yaml"])
    assert "volumes" not in spec and "volumeMounts" not in spec["containers"][0]  # type: ignore[index]
    assert main(["deploy", "keys", str(tmp_path / "layerkit.yaml")]) == 2
    assert "takes no keys" in capsys.readouterr().err


def test_the_same_spec_writes_the_same_bytes(tmp_path: Path) -> None:
    out, _ = _deploy(tmp_path, "  cpu_cores: 2\n")
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    _deploy(tmp_path, "  cpu_cores: 2\n")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    text = first["knative-service.yaml"].decode()
    keys = [m for m in re.findall(r"^([a-zA-Z]+):", text, re.MULTILINE)]
    assert keys == sorted(keys)  # sorted keys at the top level


def _kubectl() -> str | None:
    """$LAYERKIT_KUBECTL, else PATH, else where scripts/services/kubectl.sh unpacks it."""
    cache = Path(os.environ.get("LAYERKIT_CACHE", Path.home() / ".cache" / "layerkit"))
    for found in (os.environ.get("LAYERKIT_KUBECTL"), shutil.which("kubectl"),
                  str(cache / "tools" / "kubectl" / "usr" / "bin" / "kubectl")):  # fmt: skip
        if found and os.access(found, os.X_OK):
            return found
    return None


def test_kubectl_kustomize_renders_the_folder(tmp_path: Path) -> None:
    kubectl = _kubectl()
    if kubectl is None:
        # CI provides it (scripts/services/kubectl.sh): there a missing kubectl is a failure.
        if os.environ.get("CI") == "1":
            pytest.fail(
                "no kubectl ($LAYERKIT_KUBECTL, PATH); CI fetches it with scripts/services/kubectl.sh"
            )
        pytest.skip("kubectl (with kustomize) is not installed")
    out, _ = _deploy(tmp_path, "  namespace: scoring\n", "--autoscaler", "hpa")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(out)], capture_output=True, text=True, check=True
    ).stdout
    docs = list(YAML(typ="safe").load_all(rendered))
    assert sorted(d["kind"] for d in docs) == ["Deployment", "HorizontalPodAutoscaler", "Service"]
    assert {d["metadata"]["namespace"] for d in docs} == {"scoring"}
    for d in docs:
        _core(d)
