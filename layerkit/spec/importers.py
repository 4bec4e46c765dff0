"""Turn other input formats into layerkit-shaped data, keeping source positions.

- conda environment.yml: name, channels, dependencies (with a `pip:` item), variables
- the hosted platform's environment JSON, standalone or inside an inference config
  (`entryScript` + `environment`)
- layerkit's own format also accepts a `{pip: [...]}` item inside conda.dependencies
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from layerkit import inputs
from layerkit.errors import SpecError, excerpt
from layerkit.spec import condalock, formats, selectors
from layerkit.spec.imageref import on_registry
from layerkit.spec.parse import Key, _Out

# Names a hosted-platform definition may not use (curated environments live there).
HOSTED_RESERVED_PREFIXES = ("AzureML-", "Microsoft")

_HOSTED_KEYS = {
    "name", "version", "python", "environmentVariables", "docker", "spark", "databricks",
    "r", "inferencingStackVersion", "assetId", "description", "tags", "properties",
}  # fmt: skip
_HOSTED_IGNORED = {"spark", "databricks", "r", "assetId", "tags", "properties"}
_DOCKER_KEYS = {
    "enabled", "baseImage", "baseDockerfile", "baseImageRegistry", "arguments",
    "sharedVolumes", "shmSize", "platform", "buildContext",
}  # fmt: skip
_PYTHON_KEYS = {
    "userManagedDependencies", "interpreterPath", "condaDependencies",
    "condaDependenciesFile", "baseCondaEnvironment",
}  # fmt: skip


def _split_pip(deps: Any, out: _Out, old: Key, new: Key, skip: frozenset[Key] = frozenset()) -> None:
    """Split an environment.yml dependency list into conda strings and the pip list, leaving
    out the items (old keys) in `skip`."""
    if not isinstance(deps, list):
        out.put((*new, "dependencies"), deps, old)  # the model reports the type error
        return
    conda: list[Any] = []
    for i, item in enumerate(deps):
        if isinstance(item, dict):
            if set(item) != {"pip"}:
                raise SpecError("a mapping in dependencies may only hold 'pip: [...]'", out.loc((*old, i)))
            pip = item["pip"]
            if isinstance(pip, list) and skip:
                kept = [j for j in range(len(pip)) if (*old, i, "pip", j) not in skip]
                for n, j in enumerate(kept):
                    out.copy_positions((*new, "pip", n), (*old, i, "pip", j))
                out.put((*new, "pip"), [pip[j] for j in kept], (*old, i, "pip"), children=False)
            else:
                out.put((*new, "pip"), pip, (*old, i, "pip"))
            continue
        if (*old, i) in skip:
            continue
        out.copy_positions((*new, "dependencies", len(conda)), (*old, i))
        conda.append(item)
    # The list's own position only: its items were renumbered above (a `pip:` item drops out),
    # and copying the old children would shift every later item by one.
    out.put((*new, "dependencies"), conda, old, children=False)


def _check_keys(data: dict[str, Any], allowed: set[str], where: Key, out: _Out) -> None:
    for key in data:
        if key not in allowed:
            hint = difflib.get_close_matches(key, sorted(allowed), n=1)
            tip = f"; did you mean '{hint[0]}'?" if hint else ""
            raise SpecError(f"unknown key {excerpt(key)}{tip}", out.loc((*where, key)))


# conda's own keys (conda/env/env.py VALID_KEYS); conda-lock's are in spec/condalock.py.
ENV_YML_KEYS = ("name", "channels", "dependencies", "variables", "prefix")


def _env_yml(data: dict[str, Any], out: _Out, warnings: list[str], text: str | None) -> None:
    known = (*ENV_YML_KEYS, *condalock.KEYS)
    for key in data:
        if key not in known:
            # conda drops a key it does not know with a message ("EnvironmentSectionNotValid:
            # ... will be ignored", conda/env/env.py validate_keys) and creates the env anyway.
            hint = difflib.get_close_matches(key, known, n=1)
            tip = f"; did you mean '{hint[0]}'?" if hint else ""
            warnings.append(
                f"{out.loc((key,))}: warning: '{key}' is not an environment.yml key; conda ignores it "
                f"and so does layerkit{tip}"
            )
    if "name" in data:
        out.put(("name",), data["name"], ("name",))
    if "channels" in data:
        out.put(("conda", "channels"), data["channels"], ("channels",))
    if "dependencies" in data:
        if data["dependencies"] is None:
            # conda's CEP 24 check: "Invalid type for 'dependencies', expected a list"
            raise SpecError(
                "'dependencies' has no value; conda refuses it (expected a list): list the "
                "packages, or write 'dependencies: []'",
                out.loc(("dependencies",)),
            )
        skip = selectors.dropped(text, data, out.pos, out.source, warnings) if text else frozenset()
        _split_pip(data["dependencies"], out, ("dependencies",), ("conda",), skip)
    if "variables" in data:
        out.put(("env",), data["variables"], ("variables",))
    condalock.import_keys(data, out, warnings)


def hosted(data: dict[str, Any], out: _Out, prefix: Key, base_dir: Path, warnings: list[str]) -> None:
    """The v1 environment JSON (azureml-core Environment's keys), at `prefix` in the file."""
    v2 = next((k for k in data if k in formats.AML_V2), None)
    if v2 is not None:
        raise SpecError(formats.AML_V2_PREVIEW, out.loc((*prefix, v2)))
    _check_keys(data, _HOSTED_KEYS, prefix, out)
    name = data.get("name")
    if isinstance(name, str) and name.startswith(HOSTED_RESERVED_PREFIXES):
        raise SpecError(
            f"name '{name}' uses a prefix reserved for the platform's curated environments; rename it",
            out.loc((*prefix, "name")),
        )
    for key in ("name", "version", "description"):
        if data.get(key) is not None:
            out.put((key,), data[key], (*prefix, key))
    for key in sorted(_HOSTED_IGNORED & set(data)):
        if not _sdk_default(data[key]):
            warnings.append(f"{out.loc((*prefix, key))}: warning: '{key}' is not supported and was ignored")
    if data.get("environmentVariables") is not None:
        out.put(("env",), data["environmentVariables"], (*prefix, "environmentVariables"))
    if data.get("inferencingStackVersion") is not None:
        raise SpecError(
            "inferencingStackVersion is not built by layerkit (it adds Azure's own serving stack); remove it "
            "and list the web server your entry script needs (e.g. azureml-inference-server-http) as a pip package",
            out.loc((*prefix, "inferencingStackVersion")),
        )
    py = data.get("python") or {}
    if not isinstance(py, dict):
        raise SpecError("'python' must be a mapping", out.loc((*prefix, "python")))
    _check_keys(py, _PYTHON_KEYS, (*prefix, "python"), out)
    pk: Key = (*prefix, "python")
    if py.get("interpreterPath") not in (None, "python"):
        if py.get("userManagedDependencies"):
            out.put(("runtime", "python"), py["interpreterPath"], (*pk, "interpreterPath"))
        else:  # as on the platform, which reads it for user-managed environments only
            warnings.append(f"{out.loc((*pk, 'interpreterPath'))}: warning: 'interpreterPath' applies to "
                            "user-managed environments only (userManagedDependencies: true); ignored")  # fmt: skip
    if py.get("baseCondaEnvironment") is not None:
        raise SpecError("'baseCondaEnvironment' is not supported; list the packages instead",
                        out.loc((*pk, "baseCondaEnvironment")))  # fmt: skip
    cd = py.get("condaDependencies")
    if py.get("condaDependenciesFile") is not None:
        if cd is not None:
            raise SpecError("set condaDependencies or condaDependenciesFile, not both",
                            out.loc((*pk, "condaDependenciesFile")))  # fmt: skip
        conda_file(py["condaDependenciesFile"], base_dir, out, (*pk, "condaDependenciesFile"))
    elif isinstance(cd, dict):
        _check_keys(cd, {"name", "channels", "dependencies"}, (*pk, "condaDependencies"), out)
        if "channels" in cd:
            out.put(("conda", "channels"), cd["channels"], (*pk, "condaDependencies", "channels"))
        if "dependencies" in cd:
            _split_pip(cd["dependencies"], out, (*pk, "condaDependencies", "dependencies"), ("conda",))
    elif cd is not None:
        raise SpecError("'condaDependencies' must be a mapping", out.loc((*pk, "condaDependencies")))
    elif prefix == () and (base_dir / SAVED_CONDA).is_file():
        # Environment.save_to_directory writes the conda spec beside the JSON, and
        # Environment.load_from_directory reads it back from there.
        conda_file(SAVED_CONDA, base_dir, out, (*pk, "condaDependenciesFile") if py else (), SAVED_CONDA)
    if py.get("userManagedDependencies") is not None:
        out.put(("user_managed",), py["userManagedDependencies"], (*pk, "userManagedDependencies"))
        if py["userManagedDependencies"] is True and ("conda" in out.data or "extends" in out.data):
            out.data.pop("conda", None)  # Azure installs none of them; neither does layerkit
            out.data.pop("extends", None)
            warnings.append(
                f"{out.loc((*pk, 'userManagedDependencies'))}: warning: userManagedDependencies is true, so "
                "the conda dependencies are not installed (Azure ignores them too); set it to false to install them"
            )
    _hosted_docker(data.get("docker"), out, (*prefix, "docker"), warnings)


SAVED_CONDA = "conda_dependencies.yml"


def _sdk_default(value: Any) -> bool:
    """Empty, or only the empty lists and flags the v1 SDK writes for an unused section."""
    if isinstance(value, dict):
        return all(_sdk_default(v) or isinstance(v, bool) for v in value.values())
    return value in (None, [], "")


def read_beside(rel: Any, base_dir: Path, out: _Out, old: Key) -> str:
    """The text of a file a key names, relative to the file that names it."""
    if not isinstance(rel, str):
        raise SpecError(f"'{old[-1]}' must be a path", out.loc(old))
    return inputs.read_text(base_dir / rel, f"file named by '{old[-1]}'", out.loc(old))


def conda_file(rel: Any, base_dir: Path, out: _Out, old: Key, what: str = "condaDependenciesFile") -> None:
    """A conda environment file named at `old`: read as a layer of its own (an `extends`), so
    its values merge under this file's and keep their own file:line:col."""
    if isinstance(rel, dict):  # a v2 conda_file may hold the environment inline
        _split_into(rel, out, old, old)
        return
    if not isinstance(rel, str) or not rel:
        raise SpecError(f"'{what}' must be a path", out.loc(old))
    rel = rel.removeprefix("file:")
    path = base_dir / rel
    inputs.note(path)
    if not path.is_file():
        raise SpecError(f"{what}: no such file {path}", out.loc(old))
    out.put(("extends",), [rel], old, children=False)
    out.copy_positions(("extends", 0), old)


def _split_into(data: dict[str, Any], out: _Out, chan: Key, deps: Key) -> None:
    if "channels" in data:
        out.put(("conda", "channels"), data["channels"], (*chan, "channels"))
    if "dependencies" in data:
        _split_pip(data["dependencies"], out, (*deps, "dependencies"), ("conda",))


def _hosted_docker(docker: Any, out: _Out, dk: Key, warnings: list[str]) -> None:
    if docker is None:
        return
    if not isinstance(docker, dict):
        raise SpecError("'docker' must be a mapping", out.loc(dk))
    _check_keys(docker, _DOCKER_KEYS, dk, out)
    if docker.get("baseImage") is not None:
        out.put(("base", "image"), docker["baseImage"], (*dk, "baseImage"))
    if docker.get("baseDockerfile") is not None:
        out.put(("base", "dockerfile"), docker["baseDockerfile"], (*dk, "baseDockerfile"))
    if docker.get("shmSize") is not None:
        out.put(("runtime", "shm_size"), docker["shmSize"], (*dk, "shmSize"))
    if docker.get("arguments"):
        warnings.append(
            f"{out.loc((*dk, 'arguments'))}: warning: docker run arguments are not part of an image; ignored"
        )
    base_registry(docker.get("baseImageRegistry"), out, (*dk, "baseImageRegistry"))


def base_registry(reg: Any, out: _Out, rk: Key) -> None:
    """baseImageRegistry: where the base image is pulled from (not where layerkit pushes)."""
    if reg is None:
        return
    if not isinstance(reg, dict):
        raise SpecError("'baseImageRegistry' must be a mapping", out.loc(rk))
    _check_keys(reg, {"address", "username", "password", "registryIdentity"}, rk, out)
    for secret in ("username", "password"):
        if reg.get(secret):
            raise SpecError(
                f"baseImageRegistry.{secret} holds a literal credential; remove it and, in a layerkit spec "
                f"that extends this file, set base.registry.{secret}_env to the NAME of an environment variable",
                out.loc((*rk, secret)),
            )
    if reg.get("registryIdentity") is not None:
        raise SpecError("baseImageRegistry.registryIdentity (an Azure managed identity) cannot be used "
                        "outside Azure; log in with `docker login` or set base.registry.username_env",
                        out.loc((*rk, "registryIdentity")))  # fmt: skip
    address = reg.get("address")
    if address:
        out.put(("base", "registry", "address"), address, (*rk, "address"))
        image = out.data.get("base", {}).get("image")
        if isinstance(image, str):
            # Azure pulls a baseImage that names no registry from baseImageRegistry.address.
            out.data["base"]["image"] = on_registry(image, str(address))
