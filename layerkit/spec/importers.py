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
from layerkit.errors import Location, SpecError
from layerkit.spec import condalock, formats, selectors
from layerkit.spec.load import Format, Key, Positions, parse_text

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


class _Out:
    """Builds the layerkit-shaped dict and maps each new key to an old position."""

    def __init__(self, pos: Positions, source: str) -> None:
        self.pos = pos
        self.source = source
        self.new_pos: Positions = {}
        self.data: dict[str, Any] = {}

    def put(self, new: Key, value: Any, old: Key, children: bool = True) -> None:
        node = self.data
        for part in new[:-1]:
            node = node.setdefault(str(part), {})
        node[str(new[-1])] = value
        if children:
            self.copy_positions(new, old)
        elif old in self.pos:
            self.new_pos[new] = self.pos[old]

    def copy_positions(self, new: Key, old: Key) -> None:
        n = len(old)
        for key, p in self.pos.items():
            if key[:n] == old:
                self.new_pos[(*new, *key[n:])] = p
        if old in self.pos:
            self.new_pos[new] = self.pos[old]

    def loc(self, old: Key) -> Location:
        line, col = self.pos.get(old, (1, 1))
        return Location(self.source, line, col)


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
            raise SpecError(f"unknown key '{key}'{tip}", out.loc((*where, key)))


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
        skip = selectors.dropped(text, data, out.pos, out.source, warnings) if text else frozenset()
        _split_pip(data["dependencies"], out, ("dependencies",), ("conda",), skip)
    if "variables" in data:
        out.put(("env",), data["variables"], ("variables",))
    condalock.import_keys(data, out, warnings)


def _hosted(data: dict[str, Any], out: _Out, prefix: Key, base_dir: Path, warnings: list[str]) -> None:
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
        if data[key] not in (None, {}, [], ""):
            warnings.append(f"{out.loc((*prefix, key))}: warning: '{key}' is not supported and was ignored")
    if data.get("environmentVariables") is not None:
        out.put(("env",), data["environmentVariables"], (*prefix, "environmentVariables"))
    if data.get("inferencingStackVersion") is not None:
        raise SpecError("layerkit does not add the platform's inference stack; remove "
                        "'inferencingStackVersion' and list the server (azureml-inference-server-http) "
                        "in the pip dependencies", out.loc((*prefix, "inferencingStackVersion")))  # fmt: skip
    py = data.get("python") or {}
    if not isinstance(py, dict):
        raise SpecError("'python' must be a mapping", out.loc((*prefix, "python")))
    _check_keys(py, _PYTHON_KEYS, (*prefix, "python"), out)
    pk: Key = (*prefix, "python")
    if py.get("userManagedDependencies") is not None:
        out.put(("user_managed",), py["userManagedDependencies"], (*pk, "userManagedDependencies"))
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
        _conda_file(py["condaDependenciesFile"], base_dir, out, (*pk, "condaDependenciesFile"))
    elif isinstance(cd, dict):
        _check_keys(cd, {"name", "channels", "dependencies"}, (*pk, "condaDependencies"), out)
        if "channels" in cd:
            out.put(("conda", "channels"), cd["channels"], (*pk, "condaDependencies", "channels"))
        if "dependencies" in cd:
            _split_pip(cd["dependencies"], out, (*pk, "condaDependencies", "dependencies"), ("conda",))
    elif cd is not None:
        raise SpecError("'condaDependencies' must be a mapping", out.loc((*pk, "condaDependencies")))
    _hosted_docker(data.get("docker"), out, (*prefix, "docker"), warnings)


def _conda_file(rel: Any, base_dir: Path, out: _Out, old: Key) -> None:
    if not isinstance(rel, str):
        raise SpecError("'condaDependenciesFile' must be a path", out.loc(old))
    path = base_dir / rel
    inputs.note(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        raise SpecError(f"cannot read conda dependencies file {path}", out.loc(old)) from None
    data, _ = parse_text(text, str(path))
    if not isinstance(data, dict):
        raise SpecError("conda dependencies file must be a mapping", Location(str(path), 1, 1))
    if "channels" in data:
        out.put(("conda", "channels"), data["channels"], old)
    if "dependencies" in data:
        inner = _Out({}, str(path))
        _split_pip(data["dependencies"], inner, ("dependencies",), ("conda",))
        for key, value in inner.data.get("conda", {}).items():
            out.put(("conda", key), value, old)


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
    reg = docker.get("baseImageRegistry")
    if isinstance(reg, dict):
        for secret in ("username", "password"):
            if reg.get(secret):
                raise SpecError(
                    f"baseImageRegistry.{secret} holds a literal credential; remove it and set "
                    f"registry.{secret}_env to the NAME of an environment variable instead",
                    out.loc((*dk, "baseImageRegistry", secret)),
                )
        if reg.get("address"):
            out.put(("registry", "address"), reg["address"], (*dk, "baseImageRegistry", "address"))


def import_data(
    fmt: Format, data: Any, pos: Positions, source: str, base_dir: Path, text: str | None = None
) -> tuple[Any, Positions, list[str]]:
    """Return layerkit-shaped data, its positions and import warnings; `text` is the file as
    written, for conda-lock's platform selectors (comments YAML drops)."""
    warnings: list[str] = []
    if fmt == "layerkit":
        formats.check(data, pos, source)
        conda: dict[str, Any] = data.get("conda") if isinstance(data, dict) else None  # type: ignore[assignment]
        deps = conda.get("dependencies") if isinstance(conda, dict) else None
        if isinstance(conda, dict) and isinstance(deps, list) and any(isinstance(d, dict) for d in deps):
            out = _Out(pos, source)
            _split_pip(deps, out, ("conda", "dependencies"), ("conda",))
            if "pip" in conda and "pip" in out.data["conda"]:
                raise SpecError("pip packages are listed twice: in conda.pip and as a dependencies item",
                                out.loc(("conda", "pip")))  # fmt: skip
            data = {**data, "conda": {**conda, **out.data["conda"]}}
            pos = {**pos, **out.new_pos}
        return data, pos, warnings
    out = _Out(pos, source)
    if fmt == "environment.yml":
        _env_yml(data, out, warnings, text)
    elif fmt == "hosted-environment":
        _hosted(data, out, (), base_dir, warnings)
    else:
        env = data["environment"]
        if not isinstance(env, dict):
            raise SpecError("'environment' must be a mapping", out.loc(("environment",)))
        _check_keys(data, {"entryScript", "environment", "sourceDirectory", "enableGpu"}, (), out)
        _hosted(env, out, ("environment",), base_dir, warnings)
        # The scoring script belongs to a deployment, not to the environment layerkit builds.
        warnings.append(f"{out.loc(('entryScript',))}: warning: 'entryScript' is the deployment's scoring "
                        "script; layerkit builds the environment only and does not use it")  # fmt: skip
    return out.data, out.new_pos, warnings
