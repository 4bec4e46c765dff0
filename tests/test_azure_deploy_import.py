"""Azure ML deployment definitions import into `serve:` (issue 16 §1, §3).

The documents below are shaped like Azure's published examples (shape only; the values are
ours); key names and defaults are those in ../shared/AZURE-DEPLOY-KEYS.md.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from layerkit import api
from layerkit.errors import SpecError
from layerkit.spec.load import load_file
from layerkit.spec.merge import resolve
from layerkit.spec.serve import ServeSettings, settings

# Shape: learn.microsoft.com/azure/machine-learning/v1/reference-azure-machine-learning-cli,
# "Deployment configuration schema", AKS example (autoScaler, dataCollection, authEnabled,
# containerResourceRequirements), plus the other keys of its AKS table.
AKS = {
    "computeType": "aks",
    "autoScaler": {"autoscaleEnabled": True, "minReplicas": 2, "maxReplicas": 12, "refreshPeriodInSeconds": 1,
                   "targetUtilization": 60},
    "dataCollection": {"storageEnabled": True},
    "authEnabled": True,
    "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1.0, "cpuLimit": 1, "memoryInGBLimit": 2},
    "gpuCores": 1,
    "scoringTimeoutMs": 30000,
    "maxConcurrentRequestsPerContainer": 4,
    "livenessProbeRequirements": {"periodSeconds": 5, "initialDelaySeconds": 60, "timeoutSeconds": 3,
                                  "successThreshold": 1, "failureThreshold": 4},
    "namespace": "scoring",
}  # fmt: skip

# Shape: learn.microsoft.com/azure/machine-learning/v1/how-to-deploy-and-where (inferenceconfig.json:
# entryScript, sourceDirectory, environment with python.conda_dependencies and docker.baseImage).
INFERENCE = {
    "entryScript": "score.py",
    "sourceDirectory": "src",
    "environment": {
        "name": "scoring",
        "python": {"condaDependencies": {"channels": ["conda-forge"], "dependencies": ["python=3.10"]}},
        "docker": {"baseImage": "ubuntu:22.04"},
    },
}

# Shape: github.com/Azure/azureml-examples cli/endpoints/online/managed/sample/blue-deployment.yml
# (model.path, code_configuration, environment {conda_file, image}, instance_type, instance_count).
MANAGED = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: my-endpoint
model:
  path: ../model-1/model/
code_configuration:
  code: ../model-1/onlinescoring/
  scoring_script: score.py
environment:
  conda_file: ../model-1/environment/conda.yaml
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
instance_type: Standard_DS3_v2
instance_count: 3
request_settings:
  max_concurrent_requests_per_instance: 2
"""

# Shape: github.com/Azure/azureml-examples cli/endpoints/online/kubernetes/kubernetes-blue-deployment.yml
# (type kubernetes, resources.requests/limits), with the reference-yaml-deployment-kubernetes-online
# scale_settings, request_settings and probes.
KUBERNETES = """\
$schema: https://azuremlschemas.azureedge.net/latest/kubernetesOnlineDeployment.schema.json
name: blue
type: kubernetes
endpoint_name: k8s-endpoint
model:
  name: sklearn-regression
  version: 2
  path: ./model/sklearn_regression_model.pkl
code_configuration:
  code: ./onlinescoring/
  scoring_script: score.py
environment: azureml:sklearn-env:1
request_settings:
  request_timeout_ms: 3000
  max_queue_wait_ms: 3000
scale_settings:
  type: target_utilization
  min_instances: 2
  max_instances: 8
  target_utilization_percentage: 65
  polling_interval: 5
liveness_probe:
  initial_delay: 30
  failure_threshold: 5
resources:
  requests:
    cpu: "500m"
    memory: "1.5Gi"
  limits:
    cpu: "2"
    memory: "4096Mi"
    nvidia.com/gpu: "1"
"""


def _import(tmp_path: Path, name: str, text: str) -> tuple[ServeSettings, tuple[str, ...], Path]:
    path = tmp_path / name
    path.write_text(text)
    r = resolve(path)
    return settings(r.spec.serve), r.warnings, path


def test_v1_aks_deployment_config(tmp_path: Path) -> None:
    s, warnings, path = _import(tmp_path, "deploymentconfig.json", json.dumps(AKS, indent=4))
    assert load_file(path).format == "aml-deployconfig"
    assert (s.autoscale_enabled, s.autoscale_min_replicas, s.autoscale_max_replicas) == (True, 2, 12)
    assert s.autoscale_target_utilization == 60
    assert (s.cpu_cores, s.memory_gb, s.cpu_cores_limit, s.memory_gb_limit, s.gpu) == (0.5, 1.0, 1, 2, 1)
    assert (s.scoring_timeout_ms, s.max_concurrent_requests_per_replica, s.auth) == (30000, 4, "key")
    probe = s.liveness_probe
    assert (probe.initial_delay_seconds, probe.period_seconds, probe.timeout_seconds) == (60, 5, 3)
    assert probe.failure_threshold == 4 and s.namespace == "scoring"
    assert any("refreshPeriodInSeconds is ignored" in w for w in warnings)
    assert any("dataCollection: Azure service settings layerkit does not deploy" in w for w in warnings)


def test_v1_aks_defaults_stay_azures_when_keys_are_left_out(tmp_path: Path) -> None:
    s, _, _ = _import(tmp_path, "dc.json", '{"computeType": "AKS", "numReplicas": 3}')
    assert (s.autoscale_enabled, s.num_replicas) == (False, 3)
    assert (s.liveness_probe.initial_delay_seconds, s.scoring_timeout_ms) == (310, 60000)


@pytest.mark.parametrize(
    ("doc", "key", "words"),
    [
        ({"computeType": "aks", "maxQueueWaitsMs": 10}, "maxQueueWaitsMs", "did you mean 'maxQueueWaitMs'"),
        ({"computeType": "aks", "authEnabled": True, "tokenAuthEnabled": True}, "tokenAuthEnabled", "both"),
        ({"computeType": "aks", "keys": {"primaryKey": "s3cret"}}, "keys", "layerkit deploy keys"),
        ({"computeType": "batch"}, "computeType", "unknown deployment type"),
        ({"computeType": "aks", "autoScaler": {"minReplica": 1}}, "minReplica", "did you mean 'minReplicas'"),
    ],
)
def test_v1_refusals_point_at_the_key(tmp_path: Path, doc: dict[str, object], key: str, words: str) -> None:
    text = json.dumps(doc, indent=2)
    with pytest.raises(SpecError, match=words) as exc:
        _import(tmp_path, "dc.json", text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if f'"{key}"' in ln)
    assert exc.value.location is not None and exc.value.location.line == line


def test_token_auth_is_imported_then_refused_at_validate_with_its_position(tmp_path: Path) -> None:
    text = '{\n  "computeType": "aks",\n  "tokenAuthEnabled": true\n}\n'
    (tmp_path / "dc.json").write_text(text)
    (tmp_path / "layerkit.yaml").write_text("name: svc\nbase: {image: 'ubuntu:22.04'}\nuser_managed: true\n"
                                            "extends: [dc.json]\n")  # fmt: skip
    with pytest.raises(SpecError, match="identity service") as exc:
        api.check_spec(tmp_path / "layerkit.yaml")
    assert str(exc.value.location) == f"{tmp_path / 'dc.json'}:3:23"


def test_v1_local_and_aci(tmp_path: Path) -> None:
    s, _, _ = _import(tmp_path, "local.json", '{"computeType": "local", "port": 32267}')
    assert s.port == 32267
    s, warnings, _ = _import(tmp_path, "aci.json", json.dumps(
        {"computeType": "ACI", "containerResourceRequirements": {"cpu": 1, "memoryInGB": 2}, "location": "westus"}))  # fmt: skip
    assert (s.cpu_cores, s.memory_gb, s.auth) == (1, 2, "key")
    assert any("ACI deploys without auth" in w for w in warnings)
    assert any("location: Azure service settings" in w for w in warnings)


def test_v1_inference_config_fills_the_scoring_script_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "inferenceconfig.json"
    path.write_text(json.dumps(INFERENCE, indent=2))
    r = resolve(path)
    assert r.layers[-1].format == "hosted-inference"
    assert r.spec.serve is not None
    assert (r.spec.serve.entry_script, r.spec.serve.source_directory) == ("score.py", "src")
    assert r.spec.base is not None and r.spec.base.image == "ubuntu:22.04"  # the environment, as before
    assert r.loc(("serve", "entry_script")).line == 2
    # Without `environment` (passed on the command line in Azure) it is a serve-only layer.
    s, _, _ = _import(tmp_path, "ic.json", '{"entryScript": "x.py", "sourceDirectory": "./app"}')
    assert (s.entry_script, s.source_directory) == ("x.py", "./app")


def test_v2_managed_online_deployment(tmp_path: Path) -> None:
    s, warnings, path = _import(tmp_path, "blue-deployment.yml", MANAGED)
    assert load_file(path).format == "aml-online-deployment"
    assert (s.entry_script, s.source_directory) == ("score.py", "../model-1/onlinescoring/")
    assert [(m.name, m.version, m.path) for m in s.models] == [("model", None, "../model-1/model/")]
    assert (s.autoscale_enabled, s.num_replicas, s.max_concurrent_requests_per_replica) == (False, 3, 2)
    # v2's defaults, written out: they differ from the v1 AKS ones serve: defaults to.
    assert s.scoring_timeout_ms == 5000
    for probe in (s.liveness_probe, s.readiness_probe):
        assert (probe.initial_delay_seconds, probe.period_seconds, probe.timeout_seconds) == (10, 10, 2)
        assert probe.failure_threshold == 30
    assert any("environment, instance_type: Azure service settings" in w for w in warnings)


def test_v2_kubernetes_online_deployment(tmp_path: Path) -> None:
    s, warnings, _ = _import(tmp_path, "k8s-blue.yml", KUBERNETES)
    assert [(m.name, m.version, m.path) for m in s.models] == [
        ("sklearn-regression", "2", "./model/sklearn_regression_model.pkl")
    ]
    assert (s.autoscale_enabled, s.autoscale_min_replicas, s.autoscale_max_replicas) == (True, 2, 8)
    assert (s.autoscale_target_utilization, s.num_replicas, s.scoring_timeout_ms) == (65, None, 3000)
    assert (s.liveness_probe.initial_delay_seconds, s.liveness_probe.failure_threshold) == (30, 5)
    assert s.liveness_probe.period_seconds == 10  # v2 default
    assert (s.cpu_cores, s.memory_gb, s.cpu_cores_limit, s.memory_gb_limit, s.gpu) == (0.5, 1.5, 2.0, 4.0, 1)
    assert any("polling_interval is ignored" in w for w in warnings)
    assert any("max_queue_wait_ms is deprecated" in w for w in warnings)


def test_v2_kubernetes_without_scale_settings_autoscales_between_1_and_1(tmp_path: Path) -> None:
    text = "$schema: https://azuremlschemas.azureedge.net/latest/kubernetesOnlineDeployment.schema.json\n" \
           "name: blue\nendpoint_name: e\ncode_configuration: {code: src, scoring_script: score.py}\n"  # fmt: skip
    s, _, _ = _import(tmp_path, "k.yml", text)
    assert (s.autoscale_enabled, s.autoscale_min_replicas, s.autoscale_max_replicas) == (True, 1, 1)
    assert s.autoscale_target_utilization == 70


@pytest.mark.parametrize(
    ("text", "words", "line"),
    [
        ("name: b\nendpoint_name: e\ninstance_count: 1\nmodel: azureml:my-model:1\n", "az ml model download", 4),
        ("name: b\nendpoint_name: e\ninstance_type: Standard_DS3_v2\n", "instance_count is required", 1),
        ("name: b\nendpoint_name: e\ninstance_count: 1\nrequest_settings: {request_timeout: 5}\n",
         "did you mean 'request_timeout_ms'", 4),
        ("name: b\nendpoint_name: e\ntype: kubernetes\nresources: {requests: {cpu: lots}}\n",
         "not a Kubernetes CPU quantity", 4),
        ("name: b\nendpoint_name: e\ninstance_count: 1\nreadiness_probe: {success_threshold: 2}\n",
         "success_threshold must be 1", 4),
    ],
)  # fmt: skip
def test_v2_refusals(tmp_path: Path, text: str, words: str, line: int) -> None:
    with pytest.raises(SpecError, match=words) as exc:
        _import(tmp_path, "d.yml", text)
    assert exc.value.location is not None and exc.value.location.line == line


def test_a_deployment_file_layers_onto_an_environment(tmp_path: Path) -> None:
    """The usual shape: the environment in one file, Azure's deployment in another, one spec extending both."""
    (tmp_path / "blue.yml").write_text(MANAGED)
    (tmp_path / "layerkit.yaml").write_text("name: svc\nbase: {image: 'ubuntu:22.04'}\nuser_managed: true\n"
                                            "extends: [blue.yml]\nserve: {num_replicas: 5}\n")  # fmt: skip
    s = settings(api.check_spec(tmp_path / "layerkit.yaml").resolved.spec.serve)
    assert (s.num_replicas, s.entry_script) == (5, "score.py")


# Shaped as Azure's v2 environment example with inference_config (reference-yaml-environment).
V2_ENV = """$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
name: tfserving-env
image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
inference_config:
  liveness_route:
    port: {live}
    path: /v1/models/half_plus_two
  readiness_route:
    port: {ready}
    path: /v1/models/half_plus_two
  scoring_route:
    port: {score}
    path: /v1/models/half_plus_two:predict
"""


@pytest.mark.parametrize(
    ("ports", "error"),
    [
        ((8501, 8501, 8501), None),
        ((8501, 8502, 8501), "inference_config.readiness_route.port 8502 differs from "
         "inference_config.liveness_route.port 8501"),
        ((8501, 8501, 9000), "inference_config.scoring_route.port 9000 differs"),
    ],
)  # fmt: skip
def test_v2_environment_routes_become_serve_routes(
    tmp_path: Path, ports: tuple[int, int, int], error: str | None
) -> None:
    live, ready, score = ports
    text = V2_ENV.format(live=live, ready=ready, score=score)
    if error is not None:
        with pytest.raises(SpecError, match=re.escape(error)) as info:
            _import(tmp_path, "env.yml", text)
        line = 1 + text[: text.index(f"port: {ready if ready != live else score}")].count("\n")
        assert info.value.location is not None and info.value.location.line == line
        return
    s, warnings, _ = _import(tmp_path, "env.yml", text)
    assert (s.liveness_route, s.readiness_route) == ("/v1/models/half_plus_two",) * 2
    assert s.scoring_route == "/v1/models/half_plus_two:predict"
    assert s.port == 8501
    assert not any("inference_config" in w for w in warnings)
