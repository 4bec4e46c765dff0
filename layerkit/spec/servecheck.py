"""Checks on a merged `serve:` section (spec/serve.py), at validate time.

The limits are Azure's (../shared/REQUIREMENTS.md, "Deploying a model as a web service"): at
most 1000 models, a 100 MB payload cap, key auth on unless turned off explicitly. The autoscale
rules are azureml-core's `AksServiceDeploymentConfiguration.validate_configuration`.
"""

from __future__ import annotations

import re

from layerkit.errors import SpecError
from layerkit.spec.merge import Resolved
from layerkit.spec.serve import MAX_MODELS, MAX_REQUEST_MB, Serve

_NAMESPACE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # a DNS-1123 label
_ROUTES = ("liveness_route", "readiness_route", "scoring_route")
# Routes reach nginx's config (render/nginxconf.py) unquoted: a plain URL path, nothing nginx
# or a shell reads as syntax.
_ROUTE = re.compile(r"/[A-Za-z0-9._~/-]*")
# Azure ML's model names (a letter or digit first; letters, digits, '.', '_', '-'); versions
# are numbers there, text here. Both become folders of the model dir and COPY paths.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_MODEL_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Relative, '/'-separated, no '..': a file of the source tree, named in an ENV value.
_SCRIPT = re.compile(r"(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9_][A-Za-z0-9._/-]*")


def check(r: Resolved, warn: list[str]) -> None:
    """Raise SpecError at the offending value; append warnings."""
    s = r.spec.serve
    if s is None:
        return

    def at(*key: str | int) -> str:
        return _at(r, *key)

    def bad(problem: str, *key: str | int) -> SpecError:
        return _bad(r, problem, *key)

    if s.auth == "token":
        raise bad("token auth needs Azure's identity service, which layerkit cannot run; use 'auth: key' "
                  "(the default: a primary and a secondary key, see `layerkit deploy keys`)", "auth")  # fmt: skip
    if s.auth == "none":
        warn.append(f"{at('auth')}: warning: key auth is off: anyone who reaches the service can score")
    _models(r, s)
    if s.max_request_mb is not None and s.max_request_mb > MAX_REQUEST_MB:
        warn.append(f"{at('max_request_mb')}: warning: {s.max_request_mb} MB is above Azure's "
                    f"{MAX_REQUEST_MB} MB cap; the same deployment on Azure refuses such requests")  # fmt: skip
    for route in _ROUTES:
        value = getattr(s, route)
        if value is not None and (not value.startswith("/") or any(c.isspace() for c in value)):
            raise bad(f"'{value}' is not a URL path; write it as '/{value.lstrip('/')}'", route)
        if value is not None and not _ROUTE.fullmatch(value):
            raise bad(f"'{value}': a route is '/' and letters, digits and . _ ~ / - only", route)
    if s.entry_script is not None and not _SCRIPT.fullmatch(s.entry_script):
        raise bad(f"'{s.entry_script}': the entry script is a path relative to source_directory, of "
                  "letters, digits and . _ / - (no '..')", "entry_script")  # fmt: skip
    if s.namespace is not None and not _NAMESPACE.fullmatch(s.namespace):
        raise bad("a namespace is at most 63 of a-z, 0-9 and '-', not starting or ending with '-'",
                  "namespace")  # fmt: skip
    for low, high in (("cpu_cores", "cpu_cores_limit"), ("memory_gb", "memory_gb_limit")):
        request, limit = getattr(s, low), getattr(s, high)
        if request is not None and limit is not None and limit < request:
            raise bad(f"the limit {limit} is below the request {low}: {request}", high)
    _autoscale(r, s, warn)


def _at(r: Resolved, *key: str | int) -> str:
    return str(r.loc(("serve", *key)))


def _bad(r: Resolved, problem: str, *key: str | int) -> SpecError:
    return SpecError(f"serve.{'.'.join(map(str, key))}: {problem}", r.loc(("serve", *key)))


def _models(r: Resolved, s: Serve) -> None:
    models = s.models or ()
    if len(models) > MAX_MODELS:
        raise _bad(r, f"{len(models)} models; a deployment holds at most {MAX_MODELS}", "models", MAX_MODELS)
    seen: dict[tuple[str, str | None], int] = {}
    for i, m in enumerate(models):
        if not _MODEL_NAME.fullmatch(m.name):
            raise _bad(r, f"'{m.name}': a model name is letters, digits and . _ - (a letter or digit "
                       "first)", "models", i, "name")  # fmt: skip
        if m.version is not None and not _MODEL_VERSION.fullmatch(m.version):
            raise _bad(
                r, f"'{m.version}': a model version is letters, digits and . _ -", "models", i, "version"
            )
        key = (m.name, m.version)
        if key in seen:
            version = f" version {m.version}" if m.version else ""
            raise _bad(r, f"model '{m.name}'{version} is listed twice (also item {seen[key]})", "models", i)
        seen[key] = i


_AUTOSCALE_ONLY = ("autoscale_min_replicas", "autoscale_max_replicas", "autoscale_target_utilization")


def _autoscale(r: Resolved, s: Serve, warn: list[str]) -> None:
    if s.autoscale_enabled is True and s.num_replicas is not None:
        raise _bad(r, "autoscale is on, so the replicas are not fixed: remove num_replicas or set "
                  "autoscale_enabled: false", "num_replicas")  # fmt: skip
    if s.autoscale_enabled is False and s.num_replicas is None:
        raise _bad(r, "autoscale is off: set num_replicas, the fixed number of replicas", "autoscale_enabled")
    if s.num_replicas is not None:  # autoscale is off (on with num_replicas was refused above)
        for key in _AUTOSCALE_ONLY:
            if getattr(s, key) is not None:
                warn.append(f"{_at(r, key)}: warning: {key} is not used while autoscale is off")
    low, high = s.autoscale_min_replicas, s.autoscale_max_replicas
    if low is not None and high is not None and low > high:
        raise _bad(
            r,
            f"autoscale_min_replicas {low} is above autoscale_max_replicas {high}",
            "autoscale_min_replicas",
        )
