"""`layerkit plan`: the versioned JSON for other build tools, validated against its schema,
and the registry states it reports, against real registries."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from fixtures_services import Services, refused_port, registry

from layerkit.build.decisions import dockerfile_steps
from layerkit.build.registry import ImageRef, RegistryClient

SPECS = Path(__file__).parent / "specs"
SCHEMA = json.loads((resources.files("layerkit") / "schemas" / "plan-1.schema.json").read_text())


def _validated(text: str) -> dict[str, object]:
    doc = json.loads(text)
    jsonschema.validate(doc, SCHEMA)
    return doc


def test_offline_plan_of_several_specs_matches_the_schema(cli) -> None:
    r = cli("plan", SPECS / "full-cpu.yaml", SPECS / "gpu-cuda11.8.yaml", "--offline", "--json")
    assert r.code == 0, r.err
    doc = _validated(r.out)
    envs = doc["environments"]
    assert [Path(e["spec"]).name for e in envs] == ["full-cpu.yaml", "gpu-cuda11.8.yaml"]
    hashes = [cli("hash", SPECS / n).out.strip() for n in ("full-cpu.yaml", "gpu-cuda11.8.yaml")]
    assert [e["hash"] for e in envs] == hashes
    for e in envs:
        assert e["action"] == "unchecked" and e["found_at"] is None
        assert all(s["exists"] is None for s in e["stage_images"])
        assert e["image"].endswith(":" + e["hash"])
        assert e["inputs"]["files"][-1] == e["spec"]
        assert e["steps"][0]["instruction"] == "FROM"
        assert {s["stage"] for s in e["steps"]} >= {"base", "env", "runtime"}


def test_plan_names_files_relative_to_the_working_directory(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "envs" / "train").mkdir(parents=True)
    (tmp_path / "envs" / "site.yaml").write_text("env: {SITE: x}\n")
    (tmp_path / "envs" / "train" / "layerkit.yaml").write_text(
        "name: t\nextends: [../site.yaml]\nbase: {image: 'localhost:5000/debian:bookworm'}\nuser_managed: true\n"
    )
    monkeypatch.chdir(tmp_path)
    (env,) = _validated(cli("plan", "envs/train/layerkit.yaml", "--offline", "--json").out)["environments"]
    assert env["spec"] == "envs/train/layerkit.yaml"
    assert env["inputs"]["files"] == ["envs/site.yaml", "envs/train/layerkit.yaml"]


def test_plan_text_and_argument_errors(cli) -> None:
    r = cli("plan", SPECS / "full-cpu.yaml", "--offline")
    assert r.code == 0 and r.out.startswith("unchecked ")
    r = cli("plan", SPECS / "full-cpu.yaml", SPECS / "gpu-cuda11.8.yaml", "--lock", "x.yml", "--offline")
    assert r.code == 2 and "one SPEC" in r.err


def test_dockerfile_steps_join_continuations_and_track_stages() -> None:
    text = "# c\nFROM img:1 AS base\nRUN a \\\n    && b\n\nFROM base AS runtime\nCOPY --from=base /x /x\n"
    steps = [(s.stage, s.instruction, s.text) for s in dockerfile_steps(text)]
    assert steps == [
        ("base", "FROM", "img:1 AS base"),
        ("base", "RUN", "a && b"),
        ("runtime", "FROM", "base AS runtime"),
        ("runtime", "COPY", "--from=base /x /x"),
    ]


def _spec(
    tmp: Path, base_image: str, address: str, globals_: list[str] | None = None, repo: str = "plantest"
) -> Path:
    spec = tmp / repo / "layerkit.yaml"
    spec.parent.mkdir(exist_ok=True)
    glob = f"\n  global_registries: {json.dumps(globals_)}" if globals_ else ""
    spec.write_text(
        f"name: plantest\nbase: {{image: '{base_image}'}}\nuser_managed: true\n"
        f"steps: [{{run: 'echo planned'}}]\nregistry:\n  address: '{address}'\n  repository: {repo}{glob}\n"
    )
    return spec


@pytest.mark.integration
def test_plan_reports_build_cache_found_and_copy_without_changing_anything(
    cli, services: Services, tmp_path: Path
) -> None:
    client = RegistryClient()
    spec = _spec(tmp_path, services.base_image, services.registry)
    doc = _validated(cli("plan", spec, "--json", "--no-name-tag").out)
    (env,) = doc["environments"]
    assert env["action"] == "build" and env["registry"] == services.registry
    assert [s["exists"] for s in env["stage_images"]] == [False] * len(env["stage_images"])
    assert any(s["text"] == "echo planned" for s in env["steps"])

    # A shared stage in the registry becomes a cache source.
    base_stage = env["stage_images"][0]
    client.copy(ImageRef.parse(services.base_image), ImageRef.parse(base_stage["ref"]))
    (env,) = _validated(cli("plan", spec, "--json", "--no-name-tag").out)["environments"]
    assert env["stage_images"][0]["exists"] is True
    assert env["cache_from"] == [base_stage["ref"]]

    # The image in the workspace registry beside every stage image: nothing to do, no steps.
    for stage in env["stage_images"][1:]:
        client.copy(ImageRef.parse(services.base_image), ImageRef.parse(stage["ref"]))
    client.copy(ImageRef.parse(services.base_image), ImageRef.parse(env["image"]))
    (env,) = _validated(cli("plan", spec, "--json", "--no-name-tag").out)["environments"]
    assert env["action"] == "found" and env["found_at"] == env["image"] and env["steps"] == []

    # Found only in a global registry: the plan says copy, and copies nothing itself.
    with registry(tmp_path / "ws") as ws:
        spec2 = _spec(tmp_path, services.base_image, ws.address, [services.registry])
        (env2,) = _validated(cli("plan", spec2, "--json", "--no-name-tag").out)["environments"]
        assert env2["action"] == "copy"
        assert env2["found_at"] == env["image"]
        assert env2["image"] == f"{ws.address}/plantest:{env['hash']}"
        stage_refs = [s["ref"] for s in env2["stage_images"]]
        assert [c["to"] for c in env2["copies"]] == [*stage_refs, env2["image"]]  # the image last
        assert client.head_manifest(ImageRef.parse(env2["image"])) is None

    # The image alone, without its stage images, is not found: they would never be pushed.
    alone = _spec(tmp_path, services.base_image, services.registry, repo="plantest-alone")
    (env3,) = _validated(cli("plan", alone, "--json", "--no-name-tag").out)["environments"]
    client.copy(ImageRef.parse(services.base_image), ImageRef.parse(env3["image"]))
    (env3,) = _validated(cli("plan", alone, "--json", "--no-name-tag").out)["environments"]
    assert env3["action"] == "build" and env3["cache_from"] == [env3["image"]]
    assert [s["build"] for s in env3["stage_images"]] == [True] * len(env3["stage_images"])
    assert all(any(s["ref"] in w for w in env3["warnings"]) for s in env3["stage_images"]), env3


def test_unreachable_registry_leaves_the_answer_open(cli, tmp_path: Path) -> None:
    spec = _spec(tmp_path, "localhost:5000/debian:bookworm", f"127.0.0.1:{refused_port()}")
    r = cli("plan", spec, "--json")
    assert r.code == 0
    (env,) = _validated(r.out)["environments"]
    assert env["action"] == "unchecked"
    assert any("127.0.0.1" in w for w in env["warnings"])
    assert "warning" in r.err
