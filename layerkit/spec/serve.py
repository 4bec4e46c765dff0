"""The `serve:` section: how an environment is deployed as a web service (issue 16).

`None` means "unset in this layer", as everywhere in the spec, so the section merges across
layers like the others (a team layer sets resources, a model's layer its entry script).
`settings()` fills Azure's defaults in once, for everything that deploys.

Defaults are Azure ML's, from ../shared/AZURE-DEPLOY-KEYS.md: the AKS deployment config of
azureml-core 1.61 (`AksWebservice.deploy_configuration`) for resources, autoscale, timeout,
concurrency and the liveness probe; the v2 online deployment (azure-ai-ml 1.35
`ProbeSettings`) for the readiness probe, which v1 does not have. The routes and port are
azureml-inference-server-http's (`/` liveness, `/score`, port 5001; its PyPI page).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

AuthMode = Literal["key", "none", "token"]

MAX_MODELS = 1000  # Azure: at most 1000 models per deployment
MAX_REQUEST_MB = 100  # Azure's payload cap


def _version(value: object) -> object:
    # Azure model versions are numbers (`version: 3`); layerkit keeps them as text.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Model(BaseModel):  # models.py's base; not imported from there, which imports this module
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServedModel(Model):
    """A model file or folder, placed under the model dir (AZUREML_MODEL_DIR)."""

    name: str
    version: Annotated[str, BeforeValidator(_version)] | None = None
    path: str  # relative to the spec that names it


class Probe(Model):
    initial_delay_seconds: int | None = Field(default=None, ge=0)
    period_seconds: int | None = Field(default=None, ge=1)
    timeout_seconds: int | None = Field(default=None, ge=1)
    failure_threshold: int | None = Field(default=None, ge=1)


class Serve(Model):
    # The scoring script: init() and run(raw_data); relative to source_directory.
    entry_script: str | None = None
    source_directory: str | None = None  # relative to the spec; default: the spec's folder
    models: tuple[ServedModel, ...] | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    max_request_mb: int | None = Field(default=None, ge=1)  # larger requests get 413
    scoring_timeout_ms: int | None = Field(default=None, ge=1)
    max_concurrent_requests_per_replica: int | None = Field(default=None, ge=1)
    liveness_route: str | None = None
    readiness_route: str | None = None
    scoring_route: str | None = None
    auth: AuthMode | None = None  # key (default): primary and secondary key; none: off
    namespace: str | None = None  # Kubernetes namespace of the deployment
    cpu_cores: float | None = Field(default=None, gt=0)  # the request
    cpu_cores_limit: float | None = Field(default=None, gt=0)
    memory_gb: float | None = Field(default=None, gt=0)  # the request, not the limit (as on AKS)
    memory_gb_limit: float | None = Field(default=None, gt=0)
    gpu: int | None = Field(default=None, ge=0)  # whole GPUs (nvidia.com/gpu)
    autoscale_enabled: bool | None = None  # default: on unless num_replicas is set
    autoscale_min_replicas: int | None = Field(default=None, ge=1)
    autoscale_max_replicas: int | None = Field(default=None, ge=1)
    autoscale_target_utilization: int | None = Field(default=None, ge=1, le=100)  # percent
    num_replicas: int | None = Field(default=None, ge=1)  # fixed replicas, autoscale off
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None


@dataclass(frozen=True)
class ProbeSettings:
    initial_delay_seconds: int
    period_seconds: int
    timeout_seconds: int
    failure_threshold: int


# [SDK-V1] AKS livenessProbeRequirements defaults; [SDK-V2] ProbeSettings for readiness.
LIVENESS = ProbeSettings(initial_delay_seconds=310, period_seconds=10, timeout_seconds=2, failure_threshold=3)
READINESS = ProbeSettings(
    initial_delay_seconds=10, period_seconds=10, timeout_seconds=2, failure_threshold=30
)


@dataclass(frozen=True)
class ServeSettings:
    """A serve section with every default filled in: what deploy and serve read."""

    entry_script: str | None
    source_directory: str | None
    models: tuple[ServedModel, ...]
    port: int
    max_request_mb: int
    scoring_timeout_ms: int
    max_concurrent_requests_per_replica: int
    liveness_route: str
    readiness_route: str
    scoring_route: str
    auth: AuthMode
    namespace: str | None
    cpu_cores: float
    cpu_cores_limit: float | None
    memory_gb: float
    memory_gb_limit: float | None
    gpu: int
    autoscale_enabled: bool
    autoscale_min_replicas: int
    autoscale_max_replicas: int
    autoscale_target_utilization: int
    num_replicas: int | None
    liveness_probe: ProbeSettings
    readiness_probe: ProbeSettings


def _probe(probe: Probe | None, default: ProbeSettings) -> ProbeSettings:
    p = probe or Probe()
    return ProbeSettings(
        initial_delay_seconds=(
            default.initial_delay_seconds if p.initial_delay_seconds is None else p.initial_delay_seconds
        ),
        period_seconds=p.period_seconds or default.period_seconds,
        timeout_seconds=p.timeout_seconds or default.timeout_seconds,
        failure_threshold=p.failure_threshold or default.failure_threshold,
    )


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def settings(serve: Serve | None) -> ServeSettings:
    s = serve or Serve()
    autoscale = s.autoscale_enabled if s.autoscale_enabled is not None else s.num_replicas is None
    return ServeSettings(
        entry_script=s.entry_script,
        source_directory=s.source_directory,
        models=s.models or (),
        port=_or(s.port, 5001),
        max_request_mb=_or(s.max_request_mb, MAX_REQUEST_MB),
        scoring_timeout_ms=_or(s.scoring_timeout_ms, 60000),
        max_concurrent_requests_per_replica=_or(s.max_concurrent_requests_per_replica, 1),
        liveness_route=s.liveness_route or "/",
        # The server answers `/` once init() has returned: it is ready when it is live.
        readiness_route=s.readiness_route or "/",
        scoring_route=s.scoring_route or "/score",
        auth=s.auth or "key",
        namespace=s.namespace,
        cpu_cores=s.cpu_cores if s.cpu_cores is not None else 0.1,
        cpu_cores_limit=s.cpu_cores_limit,
        memory_gb=s.memory_gb if s.memory_gb is not None else 0.5,
        memory_gb_limit=s.memory_gb_limit,
        # azureml-core 1.61 says 0, the v1 CLI docs 1: a GPU is asked for, never implied.
        gpu=_or(s.gpu, 0),
        autoscale_enabled=autoscale,
        autoscale_min_replicas=_or(s.autoscale_min_replicas, 1),
        autoscale_max_replicas=_or(s.autoscale_max_replicas, 10),
        autoscale_target_utilization=_or(s.autoscale_target_utilization, 70),
        num_replicas=s.num_replicas,
        liveness_probe=_probe(s.liveness_probe, LIVENESS),
        readiness_probe=_probe(s.readiness_probe, READINESS),
    )
