"""Azure ML formats other than the v1 environment JSON (importers.py): the CLI v2 environment
YAML, a v1 `.runconfig`'s `environment:` section, and the v1 inference config.

Key names are Azure's published ones:
- v2: https://azuremlschemas.azureedge.net/latest/environment.schema.json, as documented in
  learn.microsoft.com/azure/machine-learning/reference-yaml-environment (`$schema`, `name`,
  `version`, `description`, `tags`, `image`, `conda_file`, `build.path`,
  `build.dockerfile_path` (default "Dockerfile"), `os_type` (linux|windows), `inference_config`
  with `liveness_route`/`readiness_route`/`scoring_route` of `{path, port}`).
- v1 inference config: azureml-core's InferenceConfig / ContainerImageConfig JSON
  (`entryScript` and `sourceDirectory`, which go to the `serve:` section, `runtime` "python"|"spark-py", `condaFile`, `extraDockerfileSteps`,
  `sourceDirectory`, `enableGpu`, `baseImage`, `baseImageRegistry`, `schemaFile`,
  `description`, `environment`).
- v1 runconfig: RunConfiguration's YAML (`script`, `arguments`, `target`, `framework`,
  `communicator`, ... and `environment`, which holds the v1 environment JSON's keys).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from layerkit.errors import SpecError
from layerkit.spec.imageref import on_registry

if TYPE_CHECKING:
    from layerkit.spec.parse import Key, _Out

V2_KEYS = ("$schema", "name", "version", "description", "tags", "image", "conda_file", "build",
           "os_type", "inference_config")  # fmt: skip
_V2_ROUTES = ("liveness_route", "readiness_route", "scoring_route")
INFERENCE_KEYS = ("entryScript", "runtime", "condaFile", "extraDockerfileSteps", "sourceDirectory",
                  "enableGpu", "baseImage", "baseImageRegistry", "schemaFile", "description",
                  "environment")  # fmt: skip
# Azure ML v1's GPU default was a CUDA image; layerkit's nearest catalog base.
GPU_FLAVOUR = "cuda12.1-cudnn8-ubuntu22.04"


def v2(data: dict[str, Any], out: _Out, base_dir: Path, warnings: list[str]) -> None:
    from layerkit.spec import importers as I

    I._check_keys(data, set(V2_KEYS), (), out)
    for key in ("name", "version", "description"):
        if data.get(key) is not None:
            out.put((key,), data[key], (key,))
    os_type = data.get("os_type")
    if os_type not in (None, "linux"):
        raise SpecError(f"os_type '{os_type}': layerkit builds Linux images only; use os_type: linux",
                        out.loc(("os_type",)))  # fmt: skip
    if data.get("tags") not in (None, {}):
        warnings.append(
            f"{out.loc(('tags',))}: warning: 'tags' label the Azure asset, not the image; ignored"
        )
    image, build = data.get("image"), data.get("build")
    if (image is None) == (build is None):
        raise SpecError("set one of 'image' or 'build' (the v2 schema requires exactly one)", out.loc(()))
    if image is not None:
        out.put(("base", "image"), image, ("image",))
    else:
        _build(build, out, base_dir)
    if data.get("conda_file") is not None:
        if build is not None:
            raise SpecError("'conda_file' goes with 'image'; with 'build', install the packages in the "
                            "Dockerfile (the v2 schema allows conda_file only with image)",
                            out.loc(("conda_file",)))  # fmt: skip
        I.conda_file(data["conda_file"], base_dir, out, ("conda_file",), "conda_file")
    else:
        # Azure builds nothing on an image-only environment: it runs the image as it is.
        out.put(("user_managed",), True, ("image",) if image is not None else ("build",), children=False)
    _routes(data.get("inference_config"), out)


def _build(build: Any, out: _Out, base_dir: Path) -> None:
    from layerkit.spec import importers as I

    if not isinstance(build, dict):
        raise SpecError("'build' must be a mapping with 'path'", out.loc(("build",)))
    I._check_keys(build, {"path", "dockerfile_path"}, ("build",), out)
    path = build.get("path")
    if not isinstance(path, str) or "://" in path or path.startswith(("azureml:", "git+")):
        raise SpecError("build.path must be a local folder (a remote context is not fetched by layerkit; "
                        "clone it and give its path)", out.loc(("build", "path")))  # fmt: skip
    dockerfile = build.get("dockerfile_path", "Dockerfile")
    if not isinstance(dockerfile, str):
        raise SpecError("build.dockerfile_path must be a path", out.loc(("build", "dockerfile_path")))
    folder = path.rstrip("/") or "."
    out.put(("base", "dockerfile_file"), f"{folder}/{dockerfile}",
            ("build", "dockerfile_path") if "dockerfile_path" in build else ("build", "path"), children=False)  # fmt: skip
    out.put(("base", "context"), folder, ("build", "path"), children=False)


def _routes(cfg: Any, out: _Out) -> None:
    """Azure's routes of {path, port} become serve.*_route and serve.port: the image's nginx
    listens on one port, so routes on different ports cannot be served as written."""
    from layerkit.spec import importers as I

    if cfg is None:
        return
    if not isinstance(cfg, dict):
        raise SpecError("'inference_config' must be a mapping", out.loc(("inference_config",)))
    I._check_keys(cfg, set(_V2_ROUTES), ("inference_config",), out)
    port: tuple[Any, Key] | None = None
    for route in _V2_ROUTES:
        value = cfg.get(route)
        if value is None:
            continue
        at: Key = ("inference_config", route)
        if not isinstance(value, dict):
            raise SpecError(f"inference_config.{route} must be a mapping of path and port", out.loc(at))
        I._check_keys(value, {"path", "port"}, at, out)
        if value.get("path") is not None:
            out.put(("serve", route), value["path"], (*at, "path"))
        if value.get("port") is None:
            continue
        if port is not None and value["port"] != port[0]:
            raise SpecError(f"inference_config.{route}.port {value['port']} differs from "
                            f"{'.'.join(map(str, port[1]))} {port[0]}: layerkit's image serves every "
                            "route on one port (serve.port)", out.loc((*at, "port")))  # fmt: skip
        if port is None:
            port = (value["port"], (*at, "port"))
            out.put(("serve", "port"), value["port"], port[1])


def inference(data: dict[str, Any], out: _Out, base_dir: Path, warnings: list[str]) -> None:
    """A v1 inference config: `environment` (the v1 environment JSON) or the legacy keys."""
    from layerkit.spec import importers as I

    I._check_keys(data, set(INFERENCE_KEYS), (), out)
    for old, new in (("entryScript", "entry_script"), ("sourceDirectory", "source_directory")):
        if data.get(old) is not None:
            out.put(("serve", new), data[old], (old,))
    if data.get("description") is not None:
        out.put(("description",), data["description"], ("description",))
    runtime = data.get("runtime")
    if runtime is not None and str(runtime).lower() != "python":
        raise SpecError(f"runtime '{runtime}' is not built by layerkit, which builds Python images; "
                        "use runtime: python", out.loc(("runtime",)))  # fmt: skip
    if data.get("schemaFile") is not None:
        raise SpecError("'schemaFile' is not read: a web service schema belongs to the deployment, not the "
                        "image; remove this key", out.loc(("schemaFile",)))  # fmt: skip
    legacy = [k for k in ("condaFile", "extraDockerfileSteps", "baseImage", "baseImageRegistry")
              if data.get(k) is not None]  # fmt: skip
    env = data.get("environment")
    if env is not None:
        if legacy:
            raise SpecError(f"'{legacy[0]}' and 'environment' both describe the image; Azure ML refuses "
                            "the pair: keep 'environment'", out.loc((legacy[0],)))  # fmt: skip
        if not isinstance(env, dict):
            raise SpecError("'environment' must be a mapping", out.loc(("environment",)))
        I.hosted(env, out, ("environment",), base_dir, warnings)
    else:
        _legacy(data, out, base_dir, warnings)
    if data.get("enableGpu") is True:
        gpu(out, ("enableGpu",))


def _legacy(data: dict[str, Any], out: _Out, base_dir: Path, warnings: list[str]) -> None:
    from layerkit.spec import importers as I

    steps = data.get("extraDockerfileSteps")
    image = data.get("baseImage")
    reg = data.get("baseImageRegistry")
    address = reg.get("address") if isinstance(reg, dict) else None
    if steps is not None and isinstance(image, str) and address:
        image = on_registry(image, str(address))  # the FROM below is pulled from there too
    if steps is not None:
        text = I.read_beside(steps, base_dir, out, ("extraDockerfileSteps",))
        # Azure ML runs these steps on top of the base image: a base Dockerfile says the same.
        out.put(("base", "dockerfile"), f"FROM {image or 'ubuntu:22.04'}\n{text}", ("extraDockerfileSteps",),
                children=False)  # fmt: skip
        if image is None:
            warnings.append(f"{out.loc(('extraDockerfileSteps',))}: warning: no baseImage, so the steps run on "
                            "ubuntu:22.04; set baseImage to choose")  # fmt: skip
    elif image is not None:
        out.put(("base", "image"), image, ("baseImage",))
    I.base_registry(data.get("baseImageRegistry"), out, ("baseImageRegistry",))
    if data.get("condaFile") is not None:
        I.conda_file(data["condaFile"], base_dir, out, ("condaFile",), "condaFile")


def gpu(out: _Out, old: Key) -> None:
    """enableGpu: true. A catalog GPU base already says its CUDA; without a base, pick one;
    an image layerkit does not know cannot say which CUDA it has."""
    from layerkit.spec.catalog import load_catalog

    base = out.data.get("base", {})
    if not base:
        out.put(("base", "flavour"), GPU_FLAVOUR, old, children=False)
        return
    image = load_catalog().by_ref(base["image"]) if "image" in base else None
    if image is None or image.cuda is None:
        raise SpecError(
            "enableGpu: true, but layerkit cannot tell which CUDA this base has; drop baseImage to get "
            f"the catalog's {GPU_FLAVOUR}, or use a layerkit spec that sets features.gpu.cuda",
            out.loc(old),
        )
