"""Azure ML deployment configs -> the `serve:` section (spec/serve.py).

Key names and defaults are Azure's, gathered with their sources in
../shared/AZURE-DEPLOY-KEYS.md:
- v1 `deploymentconfig.json` (`az ml model deploy --dc`): azureml-core 1.61
  `deploy_config_dict_to_obj` and the CLI v1 reference's AKS / ACI / local tables.
- v2 online deployment YAML: azure-ai-ml 1.35 `OnlineDeploymentSchema` and the
  managed / Kubernetes online deployment YAML references.

Unknown keys are refused with a hint (Azure ignores them, so a typo there is a silent no-op);
known keys layerkit has no use for draw one warning. The v2 defaults differ from the v1 AKS
ones that `serve:` defaults to (probe delay 10 s vs 310 s, failure threshold 30 vs 3, request
timeout 5000 vs 60000 ms, Kubernetes max instances 1 vs 10): a v2 file is imported with its
own defaults written out, so it deploys as it would on Azure.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from layerkit.errors import SpecError

if TYPE_CHECKING:
    from layerkit.spec.parse import Key, _Out

_RESOURCES = {"cpu": "cpu_cores", "memoryInGB": "memory_gb", "cpuLimit": "cpu_cores_limit",
              "memoryInGBLimit": "memory_gb_limit"}  # fmt: skip
_AUTOSCALER = {"autoscaleEnabled": "autoscale_enabled", "minReplicas": "autoscale_min_replicas",
               "maxReplicas": "autoscale_max_replicas", "targetUtilization": "autoscale_target_utilization"}  # fmt: skip
_V1_PROBE = {"initialDelaySeconds": "initial_delay_seconds", "periodSeconds": "period_seconds",
             "timeoutSeconds": "timeout_seconds", "failureThreshold": "failure_threshold"}  # fmt: skip
_AKS_DIRECT = {"scoringTimeoutMs": "scoring_timeout_ms", "numReplicas": "num_replicas",
               "maxConcurrentRequestsPerContainer": "max_concurrent_requests_per_replica",
               "gpuCores": "gpu", "namespace": "namespace"}  # fmt: skip
# Known keys with no effect on what layerkit deploys, per compute type.
_AKS_UNUSED = {"appInsightsEnabled", "dataCollection", "maxQueueWaitMs", "computeTargetName", "description",
               "tags", "properties", "versionName", "trafficPercentile"}  # fmt: skip
_ACI_UNUSED = {"location", "sslEnabled", "sslCertificate", "sslKey", "cname", "dnsNameLabel", "appInsightsEnabled",
               "vaultBaseUrl", "keyName", "keyVersion", "vnetName", "subnetName", "description", "tags",
               "properties"}  # fmt: skip
_AKS_KEYS = {"computeType", "autoScaler", "containerResourceRequirements", "authEnabled", "tokenAuthEnabled",
             "livenessProbeRequirements", "keys", *_AKS_DIRECT, *_AKS_UNUSED}  # fmt: skip
_ACI_KEYS = {"computeType", "containerResourceRequirements", "authEnabled", "keys", *_ACI_UNUSED}


def _check_keys(data: dict[str, Any], allowed: set[str], where: Key, out: _Out) -> None:
    from layerkit.spec import importers as I

    I._check_keys(data, allowed, where, out)


def _mapping(data: dict[str, Any], key: str, out: _Out, where: Key = ()) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"'{key}' must be a mapping", out.loc((*where, key)))
    return value


def _unused(data: dict[str, Any], keys: set[str], where: Key, out: _Out, warnings: list[str]) -> None:
    found = sorted(k for k in data if k in keys and data[k] is not None)
    if found:
        first = min(found, key=lambda k: out.pos.get((*where, k), (0, 0)))
        warnings.append(f"{out.loc((*where, first))}: warning: {', '.join(found)}: Azure service settings "
                        "layerkit does not deploy; ignored")  # fmt: skip


def _no_keys(data: dict[str, Any], out: _Out) -> None:
    if data.get("keys") is not None:
        raise SpecError("key material in a deployment file ends up in git and logs; remove 'keys' and let "
                        "`layerkit deploy keys` make the Secret", out.loc(("keys",)))  # fmt: skip


def v1(data: dict[str, Any], out: _Out, warnings: list[str]) -> None:
    """A v1 deployment config (`computeType`: aks, aksendpoint, aci or local)."""
    kind = str(data.get("computeType", "")).lower()
    if kind == "local":
        _check_keys(data, {"computeType", "port"}, (), out)
        if data.get("port") is not None:
            out.put(("serve", "port"), data["port"], ("port",))
        return
    if kind not in ("aks", "aksendpoint", "aci"):
        raise SpecError(f"unknown deployment type '{data.get('computeType')}'; Azure ML's are aks, aksendpoint, "
                        "aci and local", out.loc(("computeType",)))  # fmt: skip
    _check_keys(data, _ACI_KEYS if kind == "aci" else _AKS_KEYS, (), out)
    _no_keys(data, out)
    _unused(data, _ACI_UNUSED if kind == "aci" else _AKS_UNUSED, (), out, warnings)
    res = _mapping(data, "containerResourceRequirements", out)
    _check_keys(res, set(_RESOURCES) if kind != "aci" else {"cpu", "memoryInGB"},
                ("containerResourceRequirements",), out)  # fmt: skip
    for old, new in _RESOURCES.items():
        if res.get(old) is not None:
            out.put(("serve", new), res[old], ("containerResourceRequirements", old))
    _auth(data, kind, out, warnings)
    if kind == "aci":
        return
    for old, new in _AKS_DIRECT.items():
        if data.get(old) is not None:
            out.put(("serve", new), data[old], (old,))
    scaler = _mapping(data, "autoScaler", out)
    _check_keys(scaler, {*_AUTOSCALER, "refreshPeriodInSeconds"}, ("autoScaler",), out)
    for old, new in _AUTOSCALER.items():
        if scaler.get(old) is not None:
            out.put(("serve", new), scaler[old], ("autoScaler", old))
    if scaler.get("refreshPeriodInSeconds") is not None:
        warnings.append(f"{out.loc(('autoScaler', 'refreshPeriodInSeconds'))}: warning: the autoscaler "
                        "(Knative's) decides on its own tick; refreshPeriodInSeconds is ignored")  # fmt: skip
    probe = _mapping(data, "livenessProbeRequirements", out)
    _check_keys(probe, {*_V1_PROBE, "successThreshold"}, ("livenessProbeRequirements",), out)
    for old, new in _V1_PROBE.items():
        if probe.get(old) is not None:
            out.put(("serve", "liveness_probe", new), probe[old], ("livenessProbeRequirements", old))
    if probe.get("successThreshold") not in (None, 1):
        raise SpecError("Kubernetes requires a liveness successThreshold of 1",
                        out.loc(("livenessProbeRequirements", "successThreshold")))  # fmt: skip


def _auth(data: dict[str, Any], kind: str, out: _Out, warnings: list[str]) -> None:
    key, token = data.get("authEnabled"), data.get("tokenAuthEnabled")
    if key is True and token is True:
        raise SpecError("authEnabled and tokenAuthEnabled cannot both be true (Azure refuses the pair too)",
                        out.loc(("tokenAuthEnabled",)))  # fmt: skip
    if token is True:
        out.put(("serve", "auth"), "token", ("tokenAuthEnabled",))  # refused, with advice, by validate
    elif key is False:
        out.put(("serve", "auth"), "none", ("authEnabled",))
    elif key is True:
        out.put(("serve", "auth"), "key", ("authEnabled",))
    elif kind == "aci":
        warnings.append(f"{out.loc(('computeType',))}: warning: ACI deploys without auth unless authEnabled is "
                        "true; layerkit keeps key auth on (set authEnabled: false to turn it off)")  # fmt: skip


# --- v2 online deployment -------------------------------------------------------------------

_V2_IGNORED_SILENTLY = {"$schema", "name", "endpoint_name", "type"}
_V2_UNUSED = {"description", "tags", "properties", "app_insights_enabled", "egress_public_network_access",
              "private_network_connection", "data_collector", "model_mount_path", "environment_variables",
              "instance_type", "environment"}  # fmt: skip
_V2_KEYS = {*_V2_IGNORED_SILENTLY, *_V2_UNUSED, "model", "code_configuration", "instance_count",
            "scale_settings", "request_settings", "liveness_probe", "readiness_probe", "resources"}  # fmt: skip
# v2 ProbeSettings and RequestSettings defaults ([SDK-V2] docstrings; [DOC-V2M]/[DOC-V2K]).
_V2_PROBE = {"initial_delay": ("initial_delay_seconds", 10), "period": ("period_seconds", 10),
             "timeout": ("timeout_seconds", 2), "failure_threshold": ("failure_threshold", 30)}  # fmt: skip
_V2_TIMEOUT_MS = 5000
_V2_K8S_SCALE = {"min_instances": ("autoscale_min_replicas", 1), "max_instances": ("autoscale_max_replicas", 1),
                 "target_utilization_percentage": ("autoscale_target_utilization", 70)}  # fmt: skip


def v2(data: dict[str, Any], out: _Out, warnings: list[str]) -> None:
    _check_keys(data, _V2_KEYS, (), out)
    kubernetes = data.get("type") == "kubernetes" or "kubernetesOnlineDeployment" in str(
        data.get("$schema", "")
    )
    if data.get("type") not in (None, "managed", "kubernetes"):
        raise SpecError(
            f"type '{data['type']}': an online deployment is managed or kubernetes", out.loc(("type",))
        )
    _unused(data, _V2_UNUSED, (), out, warnings)
    _code(data, out)
    _model(data.get("model"), out)
    _scale(data, kubernetes, out, warnings)
    req = _mapping(data, "request_settings", out)
    _check_keys(req, {"request_timeout_ms", "max_concurrent_requests_per_instance", "max_queue_wait_ms"},
                ("request_settings",), out)  # fmt: skip
    old = ("request_settings", "request_timeout_ms")
    out.put(("serve", "scoring_timeout_ms"), req.get("request_timeout_ms", _V2_TIMEOUT_MS), old)
    if req.get("max_concurrent_requests_per_instance") is not None:
        out.put(("serve", "max_concurrent_requests_per_replica"), req["max_concurrent_requests_per_instance"],
                ("request_settings", "max_concurrent_requests_per_instance"))  # fmt: skip
    if req.get("max_queue_wait_ms") is not None:
        warnings.append(f"{out.loc(('request_settings', 'max_queue_wait_ms'))}: warning: max_queue_wait_ms is "
                        "deprecated by Azure and not deployed by layerkit; ignored")  # fmt: skip
    for probe in ("liveness_probe", "readiness_probe"):
        _probe(_mapping(data, probe, out), probe, out)
    if data.get("resources") is not None:
        _resources(_mapping(data, "resources", out), out)


def _code(data: dict[str, Any], out: _Out) -> None:
    code = _mapping(data, "code_configuration", out)
    _check_keys(code, {"code", "scoring_script"}, ("code_configuration",), out)
    path = code.get("code")
    if isinstance(path, str) and (path.startswith("azureml:") or "://" in path):
        raise SpecError(f"code '{path}' is an Azure asset layerkit cannot fetch; give the local folder",
                        out.loc(("code_configuration", "code")))  # fmt: skip
    if path is not None:
        out.put(("serve", "source_directory"), path, ("code_configuration", "code"))
    if code.get("scoring_script") is not None:
        out.put(("serve", "entry_script"), code["scoring_script"], ("code_configuration", "scoring_script"))


def _model(model: Any, out: _Out) -> None:
    if model is None:
        return
    if isinstance(model, str) and model.startswith("azureml:"):
        raise SpecError(f"model '{model}' is registered in Azure, and layerkit cannot download it; download it "
                        "(az ml model download) and write model: {path: DIR, name: NAME, version: N}",
                        out.loc(("model",)))  # fmt: skip
    item = {"path": model} if isinstance(model, str) else model
    if not isinstance(item, dict):
        raise SpecError("'model' must be a path or a mapping with 'path'", out.loc(("model",)))
    _check_keys(item, {"path", "name", "version", "type", "description", "tags", "properties"} if
                isinstance(model, dict) else {"path"}, ("model",), out)  # fmt: skip
    path = item.get("path")
    if not isinstance(path, str):
        raise SpecError("model.path: give the model's file or folder", out.loc(("model",)))
    name = item.get("name") or PurePosixPath(path.rstrip("/")).stem
    entry = {"name": name, "path": path, **({"version": item["version"]} if "version" in item else {})}
    out.put(("serve", "models"), [entry], ("model",), children=False)
    out.copy_positions(("serve", "models", 0), ("model",))
    if isinstance(model, str):
        out.copy_positions(("serve", "models", 0, "path"), ("model",))


def _scale(data: dict[str, Any], kubernetes: bool, out: _Out, warnings: list[str]) -> None:
    scale = _mapping(data, "scale_settings", out)
    kind = scale.get("type", "target_utilization" if kubernetes and not scale and "instance_count" not in data
                     else "default")  # fmt: skip
    if kind == "default":
        _check_keys(scale, {"type"}, ("scale_settings",), out)
        if data.get("instance_count") is None:
            raise SpecError("instance_count is required with the default scale settings (a fixed number of "
                            "instances)", out.loc(("scale_settings",) if scale else ()))  # fmt: skip
        out.put(("serve", "num_replicas"), data["instance_count"], ("instance_count",))
        return
    if kind != "target_utilization":
        raise SpecError(f"scale_settings.type '{kind}': use default or target_utilization",
                        out.loc(("scale_settings", "type")))  # fmt: skip
    _check_keys(scale, {"type", "polling_interval", *_V2_K8S_SCALE}, ("scale_settings",), out)
    out.put(("serve", "autoscale_enabled"), True, ("scale_settings", "type"), children=False)
    for old, (new, default) in _V2_K8S_SCALE.items():
        out.put(("serve", new), scale.get(old, default), ("scale_settings", old))
    for key, why in (("polling_interval", "the autoscaler (Knative's) decides on its own tick"),
                     ("instance_count", "target_utilization scales between min_instances and max_instances")):  # fmt: skip
        where = ("scale_settings", key) if key == "polling_interval" else (key,)
        if (scale if key == "polling_interval" else data).get(key) is not None:
            warnings.append(f"{out.loc(where)}: warning: {why}; {key} is ignored")


def _probe(probe: dict[str, Any], name: str, out: _Out) -> None:
    _check_keys(probe, {*_V2_PROBE, "success_threshold"}, (name,), out)
    for old, (new, default) in _V2_PROBE.items():
        out.put(("serve", name, new), probe.get(old, default), (name, old))
    if probe.get("success_threshold") not in (None, 1):
        raise SpecError("layerkit's probes succeed on one answer; success_threshold must be 1",
                        out.loc((name, "success_threshold")))  # fmt: skip


_CPU = re.compile(r"(\d+(?:\.\d+)?)(m?)")
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?")
_BYTES = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9,
          "T": 10**12}  # fmt: skip


def _resources(res: dict[str, Any], out: _Out) -> None:
    _check_keys(res, {"requests", "limits"}, ("resources",), out)
    for part, suffix in (("requests", ""), ("limits", "_limit")):
        values = _mapping(res, part, out, ("resources",))
        where = ("resources", part)
        _check_keys(values, {"cpu", "memory", "nvidia.com/gpu"}, where, out)
        if values.get("cpu") is not None:
            m = _CPU.fullmatch(str(values["cpu"]))
            if m is None:
                raise SpecError(
                    f"cpu '{values['cpu']}' is not a Kubernetes CPU quantity", out.loc((*where, "cpu"))
                )
            out.put(("serve", f"cpu_cores{suffix}"), float(m[1]) / (1000 if m[2] else 1), (*where, "cpu"))
        if values.get("memory") is not None:
            m = _MEMORY.fullmatch(str(values["memory"]))
            if m is None:
                raise SpecError(f"memory '{values['memory']}' is not a Kubernetes memory quantity",
                                out.loc((*where, "memory")))  # fmt: skip
            gib = round(float(m[1]) * _BYTES[m[2]] / 2**30, 3)
            out.put(("serve", f"memory_gb{suffix}"), gib, (*where, "memory"))
        gpu = values.get("nvidia.com/gpu")
        if gpu is not None and (part == "limits" or "nvidia.com/gpu" not in _mapping(res, "limits", out)):
            if not str(gpu).isdigit():
                raise SpecError(
                    f"nvidia.com/gpu '{gpu}': whole GPUs only", out.loc((*where, "nvidia.com/gpu"))
                )
            out.put(("serve", "gpu"), int(gpu), (*where, "nvidia.com/gpu"))
