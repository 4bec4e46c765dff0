"""Multi-platform images (issue 17), pure logic: the platform map, the `platform` attr of each
solve, the index hash, the index document and the index decision over a fake registry
(tests/test_multiplatform_e2e.py builds a real one on dockerd 26)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pytest

from layerkit.build.decisions import Decision, decide
from layerkit.build.index import INDEX_TYPE, Entry, document, entries_of, platform_child
from layerkit.build.lookup import Layout, Registries
from layerkit.build.multiplatform import IndexLayout, decide_index, put_index, require_registry
from layerkit.build.options import BuildOptions
from layerkit.build.registry import ImageRef, ManifestInfo
from layerkit.build.request import Target, solve_args, targets
from layerkit.errors import RegistryError, RegistryUnreachable, SpecError
from layerkit.hashing.index import index_hash
from layerkit.spec import ociplatform as P

IMAGE_TYPE = "application/vnd.oci.image.manifest.v1+json"
WS = "ws:5000"
AMD, ARM = "a" * 64, "b" * 64
HASHES = {"linux-64": AMD, "linux-aarch64": ARM}
INDEX_H = index_hash(HASHES)


# -- the platform map ----------------------------------------------------------------------
def test_conda_platforms_map_to_oci_platforms() -> None:
    assert [P.oci(p) for p in ("linux-64", "linux-aarch64", "linux-ppc64le")] == [
        "linux/amd64",
        "linux/arm64",
        "linux/ppc64le",
    ]
    with pytest.raises(SpecError, match="osx-arm64"):
        P.oci("osx-arm64")


@pytest.mark.parametrize(
    ("machine", "platform"),
    [("x86_64", "linux-64"), ("amd64", "linux-64"), ("aarch64", "linux-aarch64"), ("arm64", "linux-aarch64"),
     ("ppc64le", "linux-ppc64le"), ("riscv64", None)],
)  # fmt: skip
def test_machine_names_map_to_conda_platforms(machine: str, platform: str | None) -> None:
    assert P.from_machine(machine) == platform


def test_the_engine_architecture_wins_over_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P._platform, "machine", lambda: "x86_64")
    assert P.host() == "linux-64"
    assert P.host("arm64") == "linux-aarch64"  # a remote engine on another machine


def test_run_picks_the_host_platform_or_refuses() -> None:
    both = ("linux-64", "linux-aarch64")
    assert P.pick(both, "linux-aarch64", "s.yaml") == "linux-aarch64"
    assert P.pick(both, "linux-64", "s.yaml") == "linux-64"
    assert P.pick(("linux-64",), None, "s.yaml") == "linux-64"  # an unknown machine: as before
    with pytest.raises(SpecError, match=r"runs linux-aarch64.*--platform"):
        P.pick(("linux-64",), "linux-aarch64", "s.yaml")


# -- every solve names its platform ----------------------------------------------------------
@pytest.mark.parametrize("embedded", [True, False])
@pytest.mark.parametrize(("platform", "oci"), [("linux-64", "linux/amd64"), ("linux-aarch64", "linux/arm64")])
def test_each_backend_solves_for_the_render_platform(embedded: bool, platform: str, oci: str) -> None:
    solved = []
    for target in targets(f"{WS}/t", AMD, {"base": ARM, "env": ARM}):
        args = solve_args(
            target, embedded=embedded, cache_from=(), network="default", push=True, platform=platform
        )
        assert args.exporter == ("moby" if embedded else "image")
        solved.append((target.stage, args.frontend_attrs.get("platform")))
    # The env stage is built on the build platform (FROM --platform=$BUILDPLATFORM): its image
    # is labelled with the platform it was built on, not the target's.
    assert solved == [(None, oci), ("base", oci), ("env", None)]


def test_a_solve_without_a_platform_asks_for_none() -> None:
    args = solve_args(Target(None, AMD, "t"), embedded=True, cache_from=(), network="default", push=False)
    assert "platform" not in args.frontend_attrs


# -- the index hash -------------------------------------------------------------------------
def test_the_index_hash_is_over_the_sorted_platform_hashes() -> None:
    assert index_hash(dict(reversed(HASHES.items()))) == INDEX_H
    assert index_hash({**HASHES, "linux-aarch64": "c" * 64}) != INDEX_H
    assert index_hash({"linux-64": ARM, "linux-aarch64": AMD}) != INDEX_H  # pairs, not a set
    assert INDEX_H not in HASHES.values()
    with pytest.raises(ValueError):
        index_hash({"linux-64": AMD})


def _spec(tmp_path: Path, platforms: str, registry: bool = True) -> Path:
    spec = tmp_path / "layerkit.yaml"
    spec.write_text(
        f"name: mp\nversion: '1'\nuser_managed: true\nplatforms: {platforms}\n"
        "base: {image: 'localhost:5000/tiny:1'}\nsteps:\n  - run: ['sh', '-c', 'uname -m > /arch']\n"
        + ("registry: {address: 'localhost:5000', repository: mp}\n" if registry else "")
    )
    return spec


def test_hash_prints_the_index_hash_of_a_multi_platform_spec(cli, tmp_path: Path) -> None:
    spec = _spec(tmp_path, "[linux-aarch64, linux-64]")
    per = {p: cli("hash", spec, "--platform", p).out.strip() for p in HASHES}
    assert per["linux-64"] != per["linux-aarch64"]
    assert cli("hash", spec).out.strip() == index_hash(per)
    doc = json.loads(cli("hash", spec, "--json").out)
    assert doc["hash"] == index_hash(per) and doc["platforms"] == per


def test_a_single_platform_spec_keeps_its_hash(cli, tmp_path: Path) -> None:
    from layerkit import api

    spec = _spec(tmp_path, "[linux-64]")
    assert (
        cli("hash", spec).out.strip()
        == api.hash_spec(spec).hash
        == cli("hash", spec, "--platform", "linux-64").out.strip()
    )


# -- the index document ----------------------------------------------------------------------
def _entry(platform: str, tag_hash: str) -> Entry:
    return Entry(platform, dg(f"{WS}/t:{tag_hash}"), 500 + len(platform), IMAGE_TYPE)


def test_the_index_document_lists_each_platform_manifest() -> None:
    entries = [_entry("linux-aarch64", ARM), _entry("linux-64", AMD)]
    data = document(entries, INDEX_H)
    assert data == document(list(reversed(entries)), INDEX_H)  # bytes are a function of the entries
    doc = json.loads(data)
    assert doc["schemaVersion"] == 2 and doc["mediaType"] == INDEX_TYPE
    assert doc["annotations"] == {"io.layerkit.hash": INDEX_H}
    assert doc["manifests"] == [
        {
            "mediaType": IMAGE_TYPE,
            "digest": e.digest,
            "size": e.size,
            "platform": {"os": "linux", "architecture": a},
        }
        for e, a in ((entries[1], "amd64"), (entries[0], "arm64"))
    ]
    assert entries_of(doc, HASHES, "index") == {e.platform: e.digest for e in entries}
    assert entries_of(doc, ["linux-ppc64le"], "index") == {}


def test_a_platform_image_pushed_as_an_index_is_listed_by_its_platform_manifest() -> None:
    # BuildKit may push one platform as an index (the image beside an attestation manifest).
    child = {"mediaType": IMAGE_TYPE, "digest": "sha256:" + "1" * 64, "size": 9,
             "platform": {"os": "linux", "architecture": "arm64"}}  # fmt: skip
    attestation = {
        **child,
        "digest": "sha256:" + "2" * 64,
        "platform": {"os": "unknown", "architecture": "unknown"},
    }
    doc = {"manifests": [attestation, child]}
    assert platform_child(doc, "linux-aarch64", "x") == Entry("linux-aarch64", child["digest"], 9, IMAGE_TYPE)  # type: ignore[arg-type]
    with pytest.raises(RegistryError, match="linux/amd64"):
        platform_child(doc, "linux-64", "x")


# -- the index decision, over a fake registry ------------------------------------------------
@dataclass
class FakeRegistry:
    """Manifests by tag ref and by digest; hosts in `down` refuse."""

    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # digest -> (data, media)
    tags: dict[str, str] = field(default_factory=dict)  # "host/repo:tag" -> digest
    down: set[str] = field(default_factory=set)
    put: list[str] = field(default_factory=list)

    def tag(self, ref: str, data: bytes, media: str = IMAGE_TYPE) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.manifests[digest] = (data, media)
        self.tags[ref] = digest
        return digest

    def _lookup(self, ref: ImageRef) -> str | None:
        if ref.registry in self.down:
            raise RegistryUnreachable(f"cannot reach registry {ref.registry}")
        return (
            ref.digest
            if ref.digest in self.manifests
            else self.tags.get(f"{ref.registry}/{ref.repository}:{ref.tag}")
        )

    def head_manifest(self, ref: ImageRef) -> ManifestInfo | None:
        digest = self._lookup(ref)
        return (
            None
            if digest is None
            else ManifestInfo(digest, self.manifests[digest][1], len(self.manifests[digest][0]))
        )

    def get_manifest(self, ref: ImageRef) -> tuple[bytes, str, str]:
        digest = self._lookup(ref)
        if digest is None:
            raise RegistryError(f"GET {ref} answered HTTP 404")
        return *self.manifests[digest], digest

    def push_manifest(self, ref: ImageRef, data: bytes, media: str) -> str:
        self.put.append(str(ref.tag))
        return self.tag(f"{ref.registry}/{ref.repository}:{ref.tag}", data, media)


def dg(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


STAGE = {"linux-64": "c" * 64, "linux-aarch64": "d" * 64}
LAY = IndexLayout(None, INDEX_H, f"{WS}/t", ("mp-1",), address=WS)


def _platform_layout(platform: str) -> Layout:
    return Layout(WS, targets(f"{WS}/t", HASHES[platform], {"base": STAGE[platform]}), WS, (), "")


def _push_platform(reg: FakeRegistry, platform: str) -> None:
    """What a per-platform build leaves: its stage image, then its image."""
    reg.tag(f"{WS}/t-base:{STAGE[platform]}", f"base {platform}".encode())
    reg.tag(f"{WS}/t:{HASHES[platform]}", f"image {platform}".encode())


def _decide(reg: FakeRegistry, offline: bool = False) -> tuple[dict[str, Decision], str, list[str]]:
    warnings: list[str] = []
    registries = Registries(reg, warnings.append)  # type: ignore[arg-type]
    opts = BuildOptions(name_tag=False)
    decisions = {
        p: decide(_platform_layout(p), registries, opts, warnings.append, offline=offline) for p in HASHES
    }
    idx = decide_index(LAY, decisions, registries, warnings.append, offline=offline)
    assert idx.platforms == decisions and idx.image == f"{WS}/t:{INDEX_H}"
    return decisions, idx.action, warnings


def _put(reg: FakeRegistry) -> str:
    registries = Registries(reg, [].append)  # type: ignore[arg-type]
    return put_index(LAY, {p: f"{WS}/t:{h}" for p, h in HASHES.items()}, registries, lambda _m: None)


def test_an_empty_registry_builds_every_platform_and_the_index() -> None:
    decisions, action, warnings = _decide(FakeRegistry())
    assert action == "build" and warnings == []
    assert {p: d.action for p, d in decisions.items()} == {"linux-64": "build", "linux-aarch64": "build"}


def test_the_index_put_last_lists_each_platform_then_is_found() -> None:
    reg = FakeRegistry()
    for p in HASHES:
        _push_platform(reg, p)
    digest = _put(reg)
    assert reg.put == [INDEX_H, "mp-1"]  # the index hash first, then the name tag: same bytes
    assert reg.tags[f"{WS}/t:mp-1"] == reg.tags[f"{WS}/t:{INDEX_H}"] == digest
    doc = json.loads(reg.manifests[digest][0])
    assert entries_of(doc, HASHES, "index") == {p: reg.tags[f"{WS}/t:{h}"] for p, h in HASHES.items()}
    decisions, action, warnings = _decide(reg)
    assert action == "found" and warnings == []
    assert all(d.action == "found" for d in decisions.values())
    assert _put(reg) == digest  # putting it again changes nothing


def test_platforms_there_but_no_index_only_puts_the_index() -> None:
    reg = FakeRegistry()
    for p in HASHES:
        _push_platform(reg, p)
    decisions, action, _ = _decide(reg)
    assert action == "build" and all(d.action == "found" for d in decisions.values())


def test_an_index_missing_one_platform_manifest_rebuilds_only_that_platform() -> None:
    reg = FakeRegistry()
    for p in HASHES:
        _push_platform(reg, p)
    _put(reg)
    del reg.tags[f"{WS}/t:{ARM}"]
    decisions, action, warnings = _decide(reg)
    assert action == "build"
    assert (decisions["linux-64"].action, decisions["linux-aarch64"].action) == ("found", "build")
    assert any("without the image of linux-aarch64" in w for w in warnings), warnings


def test_an_index_that_lists_another_manifest_is_put_again() -> None:
    reg = FakeRegistry()
    for p in HASHES:
        _push_platform(reg, p)
    _put(reg)
    reg.tag(f"{WS}/t:{AMD}", b"image linux-64, pushed again")  # e.g. rebuilt with --force
    decisions, action, warnings = _decide(reg)
    assert action == "build" and all(d.action == "found" for d in decisions.values())
    assert any("does not list the image of linux-64" in w for w in warnings), warnings


def test_offline_or_a_registry_down_leaves_the_index_unchecked() -> None:
    assert _decide(FakeRegistry(), offline=True)[1] == "unchecked"
    _, action, warnings = _decide(FakeRegistry(down={WS}))
    assert action == "unchecked" and any("cannot reach" in w for w in warnings)


def test_an_index_needs_a_registry_and_a_push() -> None:
    with pytest.raises(SpecError, match=r"registry.*--platform P"):
        require_registry(IndexLayout(None, INDEX_H, "t"), BuildOptions())
    with pytest.raises(SpecError, match=r"--no-push.*--platform P"):
        require_registry(LAY, BuildOptions(push=False))


def test_build_without_a_registry_refuses_in_one_line(cli, tmp_path: Path) -> None:
    r = cli("build", _spec(tmp_path, "[linux-64, linux-aarch64]", registry=False))
    assert r.code == 2, r.err
    (error,) = [line for line in r.err.splitlines() if ": warning: " not in line]
    assert "--platform" in error and "registry" in error


# -- plan ------------------------------------------------------------------------------------
SCHEMA = json.loads(
    (Path(__file__).parent.parent / "layerkit" / "schemas" / "plan-1.schema.json").read_text()
)


def test_offline_plan_lists_the_index_and_each_platform(cli, tmp_path: Path) -> None:
    spec = _spec(tmp_path, "[linux-64, linux-aarch64]")
    r = cli("plan", spec, "--offline", "--json")
    assert r.code == 0, r.err
    (env,) = json.loads(r.out)["environments"]
    jsonschema.validate(json.loads(r.out), SCHEMA)
    per = {p: cli("hash", spec, "--platform", p).out.strip() for p in HASHES}
    assert env["hash"] == index_hash(per) and env["image"] == f"localhost:5000/mp:{env['hash']}"
    assert env["tags"] == ["localhost:5000/mp:mp-1"] and env["action"] == "unchecked"
    assert env["index"] == {
        "exists": None,
        "digest": None,
        "media_type": INDEX_TYPE,
        "refs": [env["image"], *env["tags"]],
    }
    assert env["inputs"]["platforms"] == ["linux-64", "linux-aarch64"]
    assert [(e["inputs"]["platform"], e["hash"], e["image"], e["tags"]) for e in env["platforms"]] == [
        (p, per[p], f"localhost:5000/mp:{per[p]}", []) for p in HASHES
    ]
    assert all(e["steps"] for e in env["platforms"])
    text = cli("plan", spec, "--offline").out.splitlines()
    assert text[0].startswith("unchecked ") and env["image"] in text[0]
    assert [line.split()[-1] for line in text[1:]] == list(HASHES)
    one = json.loads(cli("plan", spec, "--offline", "--json", "--platform", "linux-aarch64").out)[
        "environments"
    ][0]
    assert "platforms" not in one and one["hash"] == per["linux-aarch64"]
    # One platform of it never takes the name tag, which names the index.
    assert one["tags"] == []
    # A tag the user asks for names what this build makes: kept.
    tagged = json.loads(
        cli("plan", spec, "--offline", "--json", "--platform", "linux-aarch64", "--tag", "mine").out
    )["environments"][0]
    assert tagged["tags"] == ["localhost:5000/mp:mine"]
    (tmp_path / "single").mkdir()
    single = json.loads(cli("plan", _spec(tmp_path / "single", "[linux-64]"), "--offline", "--json").out)
    assert single["environments"][0]["tags"] == ["localhost:5000/mp:mp-1"]


# -- run and serve pick the engine's platform ------------------------------------------------
@pytest.mark.parametrize("command", [["run", "{spec}", "--", "true"], ["serve", "{spec}"]])
def test_run_and_serve_refuse_a_spec_without_the_engine_platform(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    import layerkit.build.hostplatform as hp

    monkeypatch.setattr(hp, "engine_platform", lambda addr: "linux-64")
    spec = _spec(tmp_path, "[linux-aarch64, linux-ppc64le]")
    with spec.open("a") as fh:
        fh.write("serve: {entry_script: score.py}\n")
    (tmp_path / "score.py").write_text("def init(): pass\ndef run(data): return data\n")
    r = cli(*[a.format(spec=spec) for a in command])
    assert r.code == 2, r.err
    (error,) = [line for line in r.err.splitlines() if ": warning: " not in line]
    assert "runs linux-64" in error and "--platform" in error


def test_build_json_reports_the_index_and_each_platform() -> None:
    from layerkit.build.builder import BuildResult
    from layerkit.build.summary import render as summary

    amd = BuildResult(AMD, f"{WS}/t:{AMD}", "found", digest="sha256:" + "1" * 64)
    arm = BuildResult(ARM, f"{WS}/t:{ARM}", "built", pushed=True, digest="sha256:" + "2" * 64)
    index = BuildResult(INDEX_H, f"{WS}/t:{INDEX_H}", "built", pushed=True, digest="sha256:" + "3" * 64)
    index.platforms = {"linux-aarch64": arm, "linux-64": amd}
    doc = index.to_json()
    assert (doc["hash"], doc["image"], doc["digest"]) == (INDEX_H, index.image, index.digest)
    assert doc["platforms"] == {"linux-64": amd.to_json(), "linux-aarch64": arm.to_json()}
    assert "platforms" not in amd.to_json()  # a one-platform result reads as before
    out, line = summary(doc, json_output=False)
    assert out == f"{index.image}\n" and line.startswith(f"built {index.image} in ")
