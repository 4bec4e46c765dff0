"""Kubernetes manifests for a spec's `serve:` section (issue 16 §3): a kustomize-ready folder.

Autoscaling follows Azure's semantics, not CPU: Azure scales on replica utilization (busy
replicas / replicas) against autoscale_target_utilization, fast up and about a minute down.
Knative's concurrency autoscaler (KPA) is the same rule: a target of in-flight requests per
pod (max_concurrent_requests_per_replica), a target utilization percentage, min/max scale and
a scale-down delay. Annotation keys and their checks: knative.dev/serving
pkg/apis/autoscaling (annotation_validation.go). `--autoscaler hpa` is the fallback for
clusters without Knative; it scales on CPU, and says so.

Keys never land here: the pod mounts the Secret `<name>-keys` (a volume, so a regenerated key
reaches running pods without a restart); `layerkit deploy keys` prints that Secret.
"""

from __future__ import annotations

import io
import math
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from layerkit import atomic
from layerkit.errors import SpecError
from layerkit.spec.imageref import parse_image_ref
from layerkit.spec.merge import Resolved
from layerkit.spec.serve import ProbeSettings, ServeSettings, settings

Doc = dict[str, object]
Autoscaler = Literal["knative", "hpa"]

# primary and secondary, one file each: where the inference image's entrypoint reads them
KEYS_MOUNT = "/var/run/layerkit/keys"  # = render/inference.py KEYS_DIR
KEY_NAMES = ("primary", "secondary")
SCALE_DOWN_DELAY = "1m"  # Azure scales down conservatively, after about a minute
KPA = "kpa.autoscaling.knative.dev"
# Every file `write` may produce: the ones a run does not write are removed (switching
# --autoscaler must not leave the other workload behind).
OURS = ("kustomization.yaml", "knative-service.yaml", "deployment.yaml", "service.yaml", "hpa.yaml")
_LABEL = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")  # a DNS-1035 label: Service names


@dataclass(frozen=True)
class Request:
    name: str
    image: str
    autoscaler: Autoscaler = "knative"


@dataclass(frozen=True)
class Written:
    files: tuple[Path, ...]
    warnings: tuple[str, ...]


def service_name(explicit: str | None, r: Resolved) -> str:
    """--name, else the spec's name made a DNS-1035 label."""
    if explicit is not None:
        if not _LABEL.fullmatch(explicit):
            raise SpecError(
                f"--name '{explicit}': use at most 63 of a-z, 0-9 and '-', starting with a letter"
            )
        return explicit
    derived = re.sub(r"[^a-z0-9-]+", "-", (r.spec.name or "").lower()).strip("-")[:63].rstrip("-")
    if not _LABEL.fullmatch(derived):
        raise SpecError(
            "the spec has no name that makes a Kubernetes name; give --name NAME", r.loc(("name",))
        )
    return derived


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": "layerkit", "app.kubernetes.io/name": name}


def _quantities(s: ServeSettings) -> tuple[dict[str, object], dict[str, object]]:
    """Requests and limits. memory_gb is GiB; cpu in millicores, as the API server writes them."""
    requests: dict[str, object] = {
        "cpu": f"{round(s.cpu_cores * 1000)}m",
        "memory": f"{round(s.memory_gb * 1024)}Mi",
    }
    limits: dict[str, object] = {}
    if s.cpu_cores_limit is not None:
        limits["cpu"] = f"{round(s.cpu_cores_limit * 1000)}m"
    if s.memory_gb_limit is not None:
        limits["memory"] = f"{round(s.memory_gb_limit * 1024)}Mi"
    if s.gpu:
        # An extended resource is asked for in limits (requests default to them).
        limits["nvidia.com/gpu"] = s.gpu
    return requests, limits


def _probe(route: str, port: int, p: ProbeSettings) -> Doc:
    return {
        "httpGet": {"path": route, "port": port},
        "initialDelaySeconds": p.initial_delay_seconds,
        "periodSeconds": p.period_seconds,
        "timeoutSeconds": p.timeout_seconds,
        "failureThreshold": p.failure_threshold,
    }


def pod_spec(req: Request, s: ServeSettings, knative: bool) -> Doc:
    requests, limits = _quantities(s)
    container: Doc = {
        "name": "server",
        "image": req.image,
        # Knative routes to the one port it is told of, named for its protocol.
        "ports": [{"containerPort": s.port, "name": "http1" if knative else "http", "protocol": "TCP"}],
        "resources": {"requests": requests, **({"limits": limits} if limits else {})},
        "livenessProbe": _probe(s.liveness_route, s.port, s.liveness_probe),
        "readinessProbe": _probe(s.readiness_route, s.port, s.readiness_probe),
    }
    spec: Doc = {"containers": [container]}
    if s.auth == "key":
        container["volumeMounts"] = [{"name": "keys", "mountPath": KEYS_MOUNT, "readOnly": True}]
        spec["volumes"] = [{"name": "keys", "secret": {"secretName": f"{req.name}-keys",
                            "items": [{"key": k, "path": k} for k in KEY_NAMES]}}]  # fmt: skip
    if s.gpu:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return spec


def knative_annotations(s: ServeSettings) -> dict[str, str]:
    if s.autoscale_enabled:
        low, high = s.autoscale_min_replicas, s.autoscale_max_replicas
    else:
        low = high = s.num_replicas or 1  # fixed: the autoscaler may not move it
    return {
        "autoscaling.knative.dev/class": KPA,
        "autoscaling.knative.dev/metric": "concurrency",
        "autoscaling.knative.dev/target": str(s.max_concurrent_requests_per_replica),
        "autoscaling.knative.dev/target-utilization-percentage": str(s.autoscale_target_utilization),
        "autoscaling.knative.dev/min-scale": str(low),
        "autoscaling.knative.dev/max-scale": str(high),
        "autoscaling.knative.dev/scale-down-delay": SCALE_DOWN_DELAY,
    }


def _meta(name: str) -> Doc:
    return {"name": name, "labels": _labels(name)}


def knative_service(req: Request, s: ServeSettings) -> Doc:
    spec = pod_spec(req, s, knative=True)
    # A hard cap on requests in flight per pod, as Azure's maxConcurrentRequestsPerContainer.
    spec["containerConcurrency"] = s.max_concurrent_requests_per_replica
    spec["timeoutSeconds"] = math.ceil(s.scoring_timeout_ms / 1000)
    template = {
        "metadata": {"labels": _labels(req.name), "annotations": knative_annotations(s)},
        "spec": spec,
    }
    return {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": _meta(req.name),
            "spec": {"template": template}}  # fmt: skip


def deployment(req: Request, s: ServeSettings) -> Doc:
    selector = {"matchLabels": _labels(req.name)}
    template = {"metadata": {"labels": _labels(req.name)}, "spec": pod_spec(req, s, knative=False)}
    spec: Doc = {"selector": selector, "template": template}
    if not s.autoscale_enabled:
        # With an HPA, no replicas: each `kubectl apply` would reset the scale the HPA set.
        spec["replicas"] = s.num_replicas or 1
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(req.name), "spec": spec}


def service(req: Request) -> Doc:
    port = {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(req.name),
            "spec": {"selector": _labels(req.name), "ports": [port]}}  # fmt: skip


def hpa(req: Request, s: ServeSettings) -> Doc:
    target = {"type": "Utilization", "averageUtilization": s.autoscale_target_utilization}
    behavior = {  # Azure: scale-up decisions in about a second, scale-down after about a minute
        "scaleUp": {"stabilizationWindowSeconds": 0},
        "scaleDown": {"stabilizationWindowSeconds": 60},
    }
    spec = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": req.name},
        "minReplicas": s.autoscale_min_replicas,
        "maxReplicas": s.autoscale_max_replicas,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}],
        "behavior": behavior,
    }
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": _meta(req.name),
            "spec": spec}  # fmt: skip


HPA_WARNING = (
    "layerkit: warning: --autoscaler hpa scales on CPU use, not on busy replicas as Azure does: a replica waiting "
    "on I/O or a GPU looks idle to it, so it can queue requests Azure would have scaled for; use the "
    "default Knative Service where Knative is installed"
)


def documents(req: Request, s: ServeSettings) -> tuple[dict[str, Doc], list[str]]:
    """File name -> manifest, and warnings."""
    warnings: list[str] = []
    if req.autoscaler == "knative":
        docs = {"knative-service.yaml": knative_service(req, s)}
        if s.gpu:
            warnings.append("layerkit: warning: the GPU toleration needs Knative's kubernetes.podspec-tolerations "
                            "feature flag (config-features) enabled")  # fmt: skip
        if s.scoring_timeout_ms > 600_000:
            warnings.append("layerkit: warning: Knative refuses a request timeout above its max-revision-timeout-seconds "
                            "(600 s by default); raise it in config-defaults")  # fmt: skip
    else:
        docs = {"deployment.yaml": deployment(req, s), "service.yaml": service(req)}
        if s.autoscale_enabled:
            docs["hpa.yaml"] = hpa(req, s)
            warnings.append(HPA_WARNING)
    kustomization: Doc = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                          "resources": sorted(docs)}  # fmt: skip
    if s.namespace:
        kustomization["namespace"] = s.namespace
    return {"kustomization.yaml": kustomization, **docs}, warnings


def dump(doc: Doc) -> str:
    """YAML with sorted keys, so the same spec writes the same bytes."""
    from ruamel.yaml import YAML

    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    y.width = 4096  # an image reference with a digest stays on its line
    buf = io.StringIO()
    y.dump(_sorted(doc), buf)
    return buf.getvalue()


def _sorted(value: object) -> object:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def write(folder: Path, req: Request, r: Resolved) -> Written:
    """Write the folder; files of ours this run does not write are removed."""
    if parse_image_ref(req.image) is None:
        raise SpecError(f"--image '{req.image}' is not a valid image reference")
    s = settings(r.spec.serve)
    docs, warnings = documents(req, s)
    if folder.exists() and not folder.is_dir():
        raise SpecError(f"-o {folder}: not a directory")
    folder.mkdir(parents=True, exist_ok=True)
    header = "# Written by `layerkit deploy`; apply with `kubectl apply -k DIR`. Edits are overwritten.\n"
    for name, doc in docs.items():
        atomic.write_text(folder / name, header + dump(doc))
    for name in OURS:
        if name not in docs and (folder / name).is_file():
            (folder / name).unlink()
    if s.auth == "key":
        warnings.append(f"layerkit: the pods mount the Secret '{req.name}-keys': create it once with "
                        f"`layerkit deploy keys SPEC | kubectl apply -f -`")  # fmt: skip
    return Written(tuple(folder / n for n in docs), tuple(warnings))


def keys_secret(
    name: str, s: ServeSettings, keep: dict[str, str] | None = None, rotate: str | None = None
) -> str:
    """The keys Secret, for stdout only (never written into the manifests' folder). `keep`: the
    keys of an earlier Secret, kept but for `rotate`; without it both keys are new."""
    if s.auth != "key":
        raise SpecError("serve.auth is not 'key': the service takes no keys")
    if rotate is not None and keep is None:
        raise SpecError(
            "--rotate needs --keep FILE (the Secret whose other key stays); without it both keys are new"
        )
    meta: Doc = {"name": f"{name}-keys", "labels": _labels(name)}
    if s.namespace:
        meta["namespace"] = s.namespace
    data = {k: (keep or {}).get(k) if k != rotate and keep else secrets.token_urlsafe(32) for k in KEY_NAMES}
    return dump(
        {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", "stringData": data}
    )


def read_keys(path: Path) -> dict[str, str]:
    """primary and secondary of a Secret file: as `deploy keys` writes it (stringData) or as
    `kubectl get secret -o yaml` prints it (data, base64)."""
    import base64
    import binascii

    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    from layerkit import inputs

    text = inputs.read_text(path, "keys Secret")
    try:
        doc = YAML(typ="safe", pure=True).load(text)
    except YAMLError:
        raise SpecError(f"--keep {path}: not YAML") from None
    if not isinstance(doc, dict) or doc.get("kind") != "Secret":
        raise SpecError(f"--keep {path}: not a Kubernetes Secret")
    plain, encoded = doc.get("stringData") or {}, doc.get("data") or {}
    out: dict[str, str] = {}
    for k in KEY_NAMES:
        value = plain.get(k) if isinstance(plain, dict) else None
        if value is None and isinstance(encoded, dict) and isinstance(encoded.get(k), str):
            try:
                value = base64.b64decode(encoded[k], validate=True).decode("ascii")
            except (binascii.Error, UnicodeDecodeError):
                raise SpecError(f"--keep {path}: data.{k} is not base64 of a key") from None
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{16,}", value):
            raise SpecError(f"--keep {path}: no {k} key (letters, digits, - and _, 16 or more)")
        out[k] = value
    return out
