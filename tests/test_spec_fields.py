"""No field that does nothing (issue 12 §2): every field of the spec model, walked recursively,
has an entry below naming what it changes (the Dockerfile and context, the hash, the lock
inputs, where images go, the registered record, or what `run` asks the engine for), and two
specs that differ in that field alone differ there. A new field without an entry fails."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from layerkit import api
from layerkit.build.builder import BuildOptions
from layerkit.build.lookup import credentials_for, layout
from layerkit.build.runner import RunOptions, container_config, spec_settings
from layerkit.build.signing import required_key
from layerkit.deploy.manifests import Request, documents
from layerkit.envs.record import build_record
from layerkit.errors import SpecError
from layerkit.lock.solve import lock_inputs
from layerkit.spec.catalog import CatalogImage
from layerkit.spec.models import Spec
from layerkit.spec.serve import settings

BASE = "name: f\nversion: '1'\nbase: {image: 'ubuntu:22.04'}\nconda: {dependencies: [numpy]}\n"
FORGE = BASE.replace("{dependencies", "{channels: [conda-forge], dependencies")  # a bare channel name
UM = "name: f\nbase: {image: 'ubuntu:22.04'}\nuser_managed: true\n"  # a user-managed image
FLAVOUR = "name: f\nbase: {flavour: cpu-ubuntu22.04}\n"


def _render(r: api.Rendered) -> object:
    return r.files


def _hash(r: api.Rendered) -> object:
    return r.hash.hash


def _lock(r: api.Rendered) -> object:
    return lock_inputs(r.checked)


def _locked_layers(r: api.Rendered) -> object:  # the locked env's layers (render/envlayers.py)
    from layerkit.lock.model import Lock, LockedPackage

    cublas = LockedPackage(
        manager="conda", platform="linux-64", name="libcublas", version="12.1", build="h0",
        url="https://conda.anaconda.org/conda-forge/linux-64/libcublas-12.1-h0.conda", sha256="0" * 64,
    )  # fmt: skip
    return api.render(r.checked, Lock(source="x", packages=(cublas,)), auto_lock=False).dockerfile


def _images(r: api.Rendered) -> object:  # `build`: where images go, what they are tagged
    lay = layout(r, BuildOptions())
    return lay.address, [(t.ref, t.extra_tags) for t in lay.targets], lay.globals


def _credentials(r: api.Rendered) -> object:  # `build`/`run`: the workspace registry's login
    return credentials_for(r, layout(r, BuildOptions()))("registry.example.com")


def _base_credentials(r: api.Rendered) -> object:  # `build`/`lock`: the base registry's login
    return credentials_for(r, layout(r, BuildOptions()))("base.example.com")


def _bases_accepting(r: api.Rendered) -> object:  # `check`: the catalog bases features.gpu fits
    from layerkit.spec.gpu import check_named_base

    def fits(image: CatalogImage) -> bool:
        try:
            check_named_base(r.checked.resolved, image)
        except SpecError:
            return False
        return True

    # No two catalog bases differ in nccl alone: try the spec's own base with other nccl releases.
    image = r.checked.image
    assert image is not None
    return tuple(n for n in ("2.15", "2.16") if fits(image.model_copy(update={"nccl": n})))


def _signature_key(r: api.Rendered) -> object:  # `build`/`plan`: the key reuse is gated on
    return required_key(r, None)


def _record(r: api.Rendered) -> object:  # `env register`
    return build_record(r, image="x", version="1").description


def _run(r: api.Rendered) -> object:  # `run`: what the engine is asked for
    settings = spec_settings(r)
    config = container_config(
        RunOptions(("python", "train.py"), user="u"), shm_size=settings["shm_size"], python=settings["python"]
    )
    return settings["workdir"], settings["gpu"], config


def _serve(r: api.Rendered) -> object:
    # The inference image's inputs (issue 16 §1: entry script, source, models, payload cap); until
    # that image is built, the settings `serve`/`deploy` read them from.
    return settings(r.checked.resolved.spec.serve)


def _deploy(r: api.Rendered) -> object:  # `deploy`: the Kubernetes manifests (both autoscalers)
    s = settings(r.checked.resolved.spec.serve)
    return [documents(Request("f", "registry.example.com/f:1", a), s) for a in ("knative", "hpa")]


# field -> (observation, spec A, spec B): A and B differ in that field only.
EFFECTS: dict[str, tuple[Callable[[api.Rendered], object], str, str]] = {
    "name": (_images, BASE, BASE.replace("name: f", "name: g")),
    "version": (_images, BASE, BASE.replace("'1'", "'2'")),
    "description": (_record, BASE, BASE + "description: other\n"),
    "extends": (_render, BASE, BASE + "extends: [layer.yaml]\n"),
    "base.image": (_hash, BASE, BASE.replace("ubuntu:22.04", "ubuntu:24.04")),
    "base.dockerfile": (
        _render,
        UM,
        UM.replace("{image: 'ubuntu:22.04'}", "{dockerfile: 'FROM ubuntu:22.04'}"),
    ),
    "base.dockerfile_file": (
        _render,
        UM,
        UM.replace("{image: 'ubuntu:22.04'}", "{dockerfile_file: Dockerfile}"),
    ),
    "base.flavour": (_render, FLAVOUR, FLAVOUR.replace("cpu-ubuntu22.04", "cpu-ubuntu24.04")),
    "base.distro": (_render, "base: {distro: ubuntu22.04}\n", "base: {distro: ubuntu24.04}\n"),
    "base.digest": (
        _hash,
        BASE,
        BASE.replace("'ubuntu:22.04'", "'ubuntu:22.04', digest: 'sha256:" + "a" * 64 + "'"),
    ),
    "base.context": (
        _hash,
        UM.replace("{image: 'ubuntu:22.04'}", "{dockerfile_file: Dockerfile.copy}"),
        UM.replace("{image: 'ubuntu:22.04'}", "{dockerfile_file: Dockerfile.copy, context: ctx}"),
    ),
    # The host whose login username_env/password_env give (importers also prefix it to the image).
    "base.registry.address": (
        _base_credentials,
        BASE.replace(
            "'ubuntu:22.04'}",
            "'ubuntu:22.04', registry: {address: base.example.com, username_env: LK_U1, password_env: LK_P1}}",
        ).replace("base.example", "other.example"),
        BASE.replace(
            "'ubuntu:22.04'}",
            "'ubuntu:22.04', registry: {address: base.example.com, username_env: LK_U1, password_env: LK_P1}}",
        ),
    ),
    "base.registry.username_env": (
        _base_credentials,
        BASE.replace(
            "'ubuntu:22.04'}",
            "'ubuntu:22.04', registry: {address: base.example.com, username_env: LK_U1, password_env: LK_P1}}",
        ),
        BASE.replace(
            "'ubuntu:22.04'}",
            "'ubuntu:22.04', registry: {address: base.example.com, username_env: LK_U1, password_env: LK_P1}}",
        ).replace("LK_U1", "LK_U2"),
    ),
    "base.registry.password_env": (
        _base_credentials,
        BASE.replace(
            "'ubuntu:22.04'}",
            "'ubuntu:22.04', registry: {address: base.example.com, username_env: LK_U1, password_env: LK_P1}}",
        ),
        BASE.replace(
            "'ubuntu:22.04'}",
            "'ubuntu:22.04', registry: {address: base.example.com, username_env: LK_U1, password_env: LK_P1}}",
        ).replace("LK_P1", "LK_P2"),
    ),
    "platforms": (_hash, BASE, BASE + "platforms: [linux-aarch64]\n"),
    "conda.channels": (_lock, BASE, BASE.replace("{dependencies", "{channels: [bioconda], dependencies")),
    "conda.dependencies": (_lock, BASE, BASE.replace("[numpy]", "[numpy, scipy]")),
    "conda.pip": (_lock, BASE, BASE.replace("[numpy]", "[numpy, pip], pip: [requests]")),
    "conda.installer": (_render, BASE, BASE.replace("[numpy]", "[numpy], installer: micromamba")),
    "conda.layers": (_locked_layers, BASE, BASE.replace("[numpy]", "[numpy], layers: false")),
    "conda.installer_image": (
        _render,
        BASE,
        BASE.replace("[numpy]", "[numpy], installer_image: 'python:3.12'"),
    ),
    "apt": (_render, BASE, BASE + "apt: [curl]\n"),
    "steps.run": (_render, BASE + "steps: [{run: 'true'}]\n", BASE + "steps: [{run: 'false'}]\n"),
    "steps.stage": (
        _render,
        BASE + "steps: [{run: 'true'}]\n",
        BASE + "steps: [{run: 'true', stage: final}]\n",
    ),
    "env": (_render, BASE, BASE + "env: {A: '1'}\n"),
    "features.datasets": (_render, BASE, BASE + "features: {datasets: true}\n"),
    "features.mpi": (
        _render,
        "base: {distro: ubuntu16.04}\nfeatures: {mpi: openmpi}\n",
        "base: {distro: ubuntu16.04}\nfeatures: {mpi: intelmpi}\n",
    ),
    "features.gpu.cuda": (_render, "features: {gpu: {cuda: '11.8'}}\n", "features: {gpu: {cuda: '12.1'}}\n"),
    "features.gpu.cudnn": (
        _render,
        "features: {gpu: {cuda: '10.0', cudnn: '7.4'}}\n",
        "features: {gpu: {cuda: '10.0', cudnn: '7.5'}}\n",
    ),
    # A constraint on the base, not a selector: it changes which bases the spec accepts (the
    # image of a base it accepts is the same, so the hash rightly stays since schema 2).
    "features.gpu.nccl": (
        _bases_accepting,
        "features: {gpu: {cuda: '11.8'}}\n",
        "features: {gpu: {cuda: '11.8', nccl: '2.15'}}\n",
    ),
    "features.onnxruntime": (
        _render,
        "features: {onnxruntime: cpu}\n",
        "features: {onnxruntime: openvino}\n",
    ),
    "user_managed": (_render, UM.replace("true", "false"), UM),
    "runtime.user": (_render, BASE, BASE + "runtime: {user: other}\n"),
    "runtime.uid": (_render, BASE, BASE + "runtime: {uid: 1234}\n"),
    "runtime.workdir": (_render, BASE, BASE + "runtime: {workdir: /work}\n"),
    "runtime.shm_size": (_run, BASE, BASE + "runtime: {shm_size: 2g}\n"),
    "runtime.python": (_run, UM, UM + "runtime: {python: /opt/venv/bin/python}\n"),
    "registry.address": (_images, BASE, BASE + "registry: {address: 'registry.example.com'}\n"),
    "registry.repository": (
        _images,
        BASE + "registry: {address: 'registry.example.com'}\n",
        BASE + "registry: {address: 'registry.example.com', repository: mine/envs}\n",
    ),
    "registry.username_env": (
        _credentials,
        BASE + "registry: {address: 'registry.example.com', username_env: LK_U1, password_env: LK_P1}\n",
        BASE + "registry: {address: 'registry.example.com', username_env: LK_U2, password_env: LK_P1}\n",
    ),
    "registry.password_env": (
        _credentials,
        BASE + "registry: {address: 'registry.example.com', username_env: LK_U1, password_env: LK_P1}\n",
        BASE + "registry: {address: 'registry.example.com', username_env: LK_U1, password_env: LK_P2}\n",
    ),
    "registry.global_registries": (
        _images,
        BASE,
        BASE + "registry: {global_registries: ['shared.example.com']}\n",
    ),
    "registry.require_signature": (
        _signature_key,
        BASE,
        BASE + "registry: {require_signature: 'hashivault://layerkit'}\n",  # a KMS key: no file
    ),
    "mirrors.channel_alias": (_lock, FORGE, FORGE + "mirrors: {channel_alias: 'http://mirror.internal/'}\n"),
    "mirrors.channels": (
        _lock,
        FORGE,
        FORGE + "mirrors: {channels: {conda-forge: 'http://mirror.internal/cf'}}\n",
    ),
    "mirrors.pypi_index": (
        _lock,
        BASE.replace("[numpy]", "[numpy, pip], pip: [requests]"),
        BASE.replace("[numpy]", "[numpy, pip], pip: [requests]")
        + "mirrors: {pypi_index: 'http://pypi.internal/simple'}\n",
    ),
    "mirrors.base_registry": (
        _render,
        FLAVOUR,
        FLAVOUR + "mirrors: {base_registry: 'mirror.internal:5000'}\n",
    ),
}

# serve.FIELD: the section's value in spec A and in spec B (spec/serve.py).
SERVE = {
    "entry_script": ("{entry_script: a.py}", "{entry_script: b.py}"),
    "source_directory": ("{source_directory: a}", "{source_directory: b}"),
    "models.name": ("{models: [{name: a, path: m}]}", "{models: [{name: b, path: m}]}"),
    "models.version": ("{models: [{name: a, path: m}]}", "{models: [{name: a, version: 2, path: m}]}"),
    "models.path": ("{models: [{name: a, path: m}]}", "{models: [{name: a, path: n}]}"),
    "port": ("{}", "{port: 8080}"),
    "max_request_mb": ("{}", "{max_request_mb: 10}"),
    "scoring_timeout_ms": ("{}", "{scoring_timeout_ms: 5000}"),
    "max_concurrent_requests_per_replica": ("{}", "{max_concurrent_requests_per_replica: 4}"),
    "liveness_route": ("{}", "{liveness_route: /live}"),
    "readiness_route": ("{}", "{readiness_route: /ready}"),
    "scoring_route": ("{}", "{scoring_route: /predict}"),
    "auth": ("{}", "{auth: none}"),
    "namespace": ("{}", "{namespace: prod}"),
    "cpu_cores": ("{}", "{cpu_cores: 2}"),
    "cpu_cores_limit": ("{}", "{cpu_cores_limit: 4}"),
    "memory_gb": ("{}", "{memory_gb: 2}"),
    "memory_gb_limit": ("{}", "{memory_gb_limit: 4}"),
    "gpu": ("{}", "{gpu: 1}"),
    # Azure's rule: autoscale follows num_replicas, and the flag saying otherwise is refused.
    "autoscale_enabled": (
        "{num_replicas: 2, autoscale_enabled: false}",
        "{num_replicas: 2, autoscale_enabled: true}",
    ),
    "autoscale_min_replicas": ("{}", "{autoscale_min_replicas: 2}"),
    "autoscale_max_replicas": ("{}", "{autoscale_max_replicas: 20}"),
    "autoscale_target_utilization": ("{}", "{autoscale_target_utilization: 50}"),
    "num_replicas": ("{}", "{num_replicas: 3}"),
    **{
        f"{probe}.{key}": ("{}", f"{{{probe}: {{{key}: 7}}}}")
        for probe in ("liveness_probe", "readiness_probe")
        for key in ("initial_delay_seconds", "period_seconds", "timeout_seconds", "failure_threshold")
    },
}
_IMAGE_ONLY = {"entry_script", "source_directory", "models.name", "models.version", "models.path",
               "max_request_mb", "scoring_route"}  # fmt: skip
EFFECTS.update(
    {
        f"serve.{k}": (
            _serve if k in _IMAGE_ONLY else _deploy,
            BASE + f"serve: {a}\n",
            BASE + f"serve: {b}\n",
        )
        for k, (a, b) in SERVE.items()
    }
)

# Fields whose only effect is a refusal of spec B (its value contradicts another field).
REFUSED_IN_B = {"serve.autoscale_enabled"}


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    """The spec models inside a field's type (through `X | None`, Annotated, tuple[X, ...])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, tuple, typing.Annotated):
        for arg in typing.get_args(annotation):
            yield from _models(arg)


def leaf_fields(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for name, info in model.model_fields.items():
        nested = list(_models(info.annotation))
        if nested:
            for sub in nested:
                yield from leaf_fields(sub, f"{prefix}{name}.")
        else:
            yield prefix + name


def test_every_field_of_the_spec_model_has_an_observable_effect_listed() -> None:
    fields = set(leaf_fields(Spec))
    assert "features.gpu.cuda" in fields and "steps.stage" in fields  # the walk is recursive
    assert fields - EFFECTS.keys() == set(), "a field without an effect: implement it or remove it"
    assert EFFECTS.keys() - fields == set(), "an entry for a field the model no longer has"


def _rendered(tmp_path: Path, name: str, text: str) -> api.Rendered:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "layer.yaml").write_text("apt: [curl]\n")
    (folder / "Dockerfile").write_text("FROM ubuntu:24.04\n")
    # base.context: the same COPY reads the spec's folder or ctx/, holding different files.
    (folder / "Dockerfile.copy").write_text("FROM ubuntu:24.04\nCOPY x.txt /x.txt\n")
    (folder / "x.txt").write_text("in the spec's folder\n")
    (folder / "ctx").mkdir()
    (folder / "ctx" / "x.txt").write_text("in ctx/\n")
    spec = folder / "layerkit.yaml"
    spec.write_text(text if text.startswith("name:") else "name: f\n" + text)
    return api.render(spec, auto_lock=False)


@pytest.mark.parametrize("field", sorted(EFFECTS))
def test_the_field_changes_what_its_entry_says(
    field: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var, value in {"LK_U1": "alice", "LK_U2": "bob", "LK_P1": "pw-1", "LK_P2": "pw-2"}.items():
        monkeypatch.setenv(var, value)
    observe, a, b = EFFECTS[field]
    assert a != b
    if field in REFUSED_IN_B:
        observe(_rendered(tmp_path, "a", a))
        with pytest.raises(SpecError, match=field.split(".")[-1]):
            _rendered(tmp_path, "b", b)
        return
    assert observe(_rendered(tmp_path, "a", a)) != observe(_rendered(tmp_path, "b", b))
