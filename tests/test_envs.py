"""Environment versions: `layerkit env register|list|show|diff` against real docker-registry
instances (anonymous and htpasswd), a second machine reading them, a registry that is down;
and the pure parts (names, version order, references, diffs)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures_services import AuthRegistry, refused_port, registry

from layerkit import api
from layerkit.build.credentials import Credentials
from layerkit.build.registry import ImageRef
from layerkit.envs.diff import diff
from layerkit.envs.models import (
    CONFIG_MEDIA_TYPE,
    HASH_TAG_PREFIX,
    BaseImage,
    EnvRecord,
    Package,
    check_version,
    normalise_name,
    sort_versions,
)
from layerkit.envs.oci import OciClient
from layerkit.envs.ops import parse_ref
from layerkit.errors import SpecError
from layerkit.lock.solve import lock_inputs

BASE = "localhost:5999/debian:bookworm"
PLATFORMS = ("linux-64", "linux-aarch64")


# -- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def anon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    with registry(tmp_path_factory.mktemp("envs-anon")) as reg:
        yield reg


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    with registry(tmp_path_factory.mktemp("envs-auth"), auth=True) as reg:
        yield reg


@pytest.fixture(autouse=True)
def _machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test is a fresh machine: its own cache, no docker config, no default registry."""
    monkeypatch.setenv("LAYERKIT_CACHE", str(tmp_path / "machine-a"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    monkeypatch.delenv("LAYERKIT_REGISTRY", raising=False)


def _write(
    folder: Path,
    address: str,
    *,
    name: str | None = "train",
    version: str | None = None,
    numpy: str = "1.26.4",
    extra: dict[str, str] | None = None,
    base_digest: str = "sha256:" + "1" * 64,
    env: str = "A: '1'",
    creds: bool = False,
) -> Path:
    """A spec and a conda-lock v1 lockfile beside it (JSON is YAML), fresh for the spec."""
    folder.mkdir(parents=True, exist_ok=True)
    head = (f"name: {name}\n" if name else "") + (f"version: '{version}'\n" if version else "")
    reg = f"registry:\n  address: '{address}'\n"
    if creds:
        reg += "  username_env: LK_TEST_USER\n  password_env: LK_TEST_PASSWORD\n"
    spec = folder / "layerkit.yaml"
    spec.write_text(
        f"{head}description: test environment\nbase: {{image: '{BASE}'}}\n"
        f"platforms: [{', '.join(PLATFORMS)}]\n"
        "conda:\n  channels: [conda-forge]\n  dependencies: [python=3.11, numpy=1.26]\n"
        f"apt: [git]\nenv: {{{env}}}\n{reg}"
    )
    packages = {
        "python": ("3.11.9", "h0_0"),
        "numpy": (numpy, "py311h0_0"),
        **{k: (v, "0") for k, v in (extra or {}).items()},
    }
    entries = [
        {
            "name": n, "version": v, "manager": "conda", "platform": plat, "dependencies": {},
            "url": f"https://conda.example/conda-forge/{plat}/{n}-{v}-{b}.conda",
            "hash": {"sha256": hashlib.sha256(f"{plat}/{n}-{v}-{b}".encode()).hexdigest()},
            "category": "main", "optional": False,
        }
        for plat in PLATFORMS
        for n, (v, b) in sorted(packages.items())
    ]  # fmt: skip
    meta = {
        "layerkit_spec_hash": lock_inputs(api.check_spec(spec)).spec_hash(),
        "layerkit_base_digests": json.dumps({BASE: base_digest}),
    }
    lock = {
        "version": 1,
        "metadata": {"content_hash": {}, "channels": [{"url": "conda-forge", "used_env_vars": []}],
                     "platforms": list(PLATFORMS), "sources": ["layerkit.yaml"], "custom_metadata": meta},
        "package": entries,
    }  # fmt: skip
    (folder / "layerkit.conda-lock.yml").write_text(json.dumps(lock, indent=1))
    return spec


def _json(text: str) -> dict[str, object]:
    doc = json.loads(text)
    assert isinstance(doc, dict)
    return doc


# -- against real registries ----------------------------------------------------------------
@pytest.mark.integration
def test_register_reuses_identical_and_versions_a_changed_lock(
    cli, anon: AuthRegistry, tmp_path: Path
) -> None:
    spec = _write(tmp_path / "p", anon.address)
    first = cli("env", "register", spec)
    assert first.code == 0, first.err
    assert first.out == "train@1\n" and "registered train@1" in first.err
    again = cli("env", "register", spec, "--json")
    assert again.code == 0, again.err
    doc = _json(again.out)
    env_hash = cli("hash", spec).out.strip()
    assert (doc["version"], doc["reused"], doc["hash"]) == ("1", True, env_hash)
    assert doc["store"] == f"{anon.address}/layerkit-envs/train"
    assert doc["image"] == f"{anon.address}/layerkit:{env_hash}"
    tags = OciClient().tags(anon.address, "layerkit-envs/train")
    assert sorted(tags) == ["1", HASH_TAG_PREFIX + env_hash]  # nothing new was pushed

    _write(tmp_path / "p", anon.address, numpy="1.26.5")
    second = cli("env", "register", spec)
    assert second.code == 0 and second.out == "train@2\n", second.err
    assert cli("env", "register", spec).out == "train@2\n"

    listed = cli("env", "list", "--registry", anon.address)
    assert listed.code == 0 and "train  1 2\n" in listed.out
    one = _json(cli("env", "list", "train", "--registry", anon.address, "--json").out)
    (entry,) = one["environments"]  # type: ignore[misc]
    assert entry["versions"] == ["1", "2"] and entry["latest"] == "2"
    assert [r["hash"] for r in entry["records"]] == [env_hash, cli("hash", spec).out.strip()]

    latest = _json(cli("env", "show", "train", "--registry", anon.address, "--json").out)
    assert latest["version"] == "2" and latest["schema"] == "layerkit.env/1"
    assert set(latest["platforms"]) == set(PLATFORMS)  # type: ignore[arg-type]
    numpy = [p for p in latest["platforms"]["linux-aarch64"] if p["name"] == "numpy"]  # type: ignore[index]
    assert [(p["version"], p["build"]) for p in numpy] == [("1.26.5", "py311h0_0")]
    assert latest["base"] == {"digest": "sha256:" + "1" * 64, "dockerfile_sha256": None, "flavour": None,
                              "image": BASE, "runtime": None, "runtime_digest": None}  # fmt: skip
    assert [s["path"] for s in latest["sources"]] == ["layerkit.yaml"]  # type: ignore[union-attr]
    text = cli("env", "show", "train@1", "--registry", anon.address).out
    assert "version: 1\n" in text and f"hash: {env_hash}\n" in text and "  numpy 1.26.4 py311h0_0\n" in text

    d = cli("env", "diff", "train@1", "train@2", "--registry", anon.address)
    assert d.code == 0, d.err
    changes = [line for line in d.out.splitlines() if line.startswith("  ")]
    assert changes == ["  ~ numpy 1.26.4 py311h0_0 -> 1.26.5 py311h0_0"] * 2
    assert "linux-64:" in d.out and "linux-aarch64:" in d.out and "base " not in d.out
    dj = _json(cli("env", "diff", "train@1", "train@2", "--registry", anon.address, "--json").out)
    for plat in PLATFORMS:
        pd = dj["packages"][plat]  # type: ignore[index]
        assert pd["added"] == [] and pd["removed"] == []
        assert [(c["name"], c["old"]["version"], c["new"]["version"]) for c in pd["changed"]] == [
            ("numpy", "1.26.4", "1.26.5")
        ]
    assert dj["base"] is None and dj["env"] == {} and dj["apt"] == {"added": [], "removed": []}


@pytest.mark.integration
def test_diff_reports_base_env_and_added_packages(cli, anon: AuthRegistry, tmp_path: Path) -> None:
    spec = _write(tmp_path / "q", anon.address, name="base-moves")
    assert cli("env", "register", spec).code == 0
    _write(tmp_path / "q", anon.address, name="base-moves", base_digest="sha256:" + "2" * 64,
           env="A: '2', B: x", extra={"scipy": "1.13.0"})  # fmt: skip
    assert cli("env", "register", spec).out == "base-moves@2\n"
    out = cli("env", "diff", "base-moves@1", "base-moves@latest", "--registry", anon.address).out
    assert f"base {BASE}@sha256:{'1' * 64} -> {BASE}@sha256:{'2' * 64}" in out
    assert out.count("  + scipy 1.13.0 0\n") == 2
    assert "env: ~A 1 -> 2" in out and "env: +B=x" in out


@pytest.mark.integration
def test_spec_version_must_be_bumped_when_the_environment_changes(
    cli, anon: AuthRegistry, tmp_path: Path
) -> None:
    spec = _write(tmp_path / "v", anon.address, name="pinned", version="2024.1")
    assert cli("env", "register", spec).out == "pinned@2024.1\n"
    _write(tmp_path / "v", anon.address, name="pinned", version="2024.1", numpy="1.26.9")
    clash = cli("env", "register", spec)
    assert clash.code == 2
    assert f"{spec}:2:" in clash.err and "bump `version:`" in clash.err and "pinned@2024.1" in clash.err
    _write(tmp_path / "v", anon.address, name="pinned", version="2024.2", numpy="1.26.9")
    assert cli("env", "register", spec).out == "pinned@2024.2\n"
    # The same environment under yet another version is the version that has it.
    _write(tmp_path / "v", anon.address, name="pinned", version="2024.3", numpy="1.26.9")
    same = cli("env", "register", spec)
    assert same.out == "pinned@2024.2\n" and "version 2024.3 was not registered" in same.err
    assert cli("env", "list", "pinned", "--registry", anon.address).out.splitlines()[-1].startswith("2024.2 ")
    # Names that end up as the same repository are refused, not mixed.
    other = _write(tmp_path / "w", anon.address, name="Pinned")
    refused = cli("env", "register", other)
    assert refused.code == 2 and "rename" in refused.err


@pytest.mark.integration
def test_anonymous_environments_are_versioned_by_hash(cli, anon: AuthRegistry, tmp_path: Path) -> None:
    spec = _write(tmp_path / "a", anon.address, name=None, numpy="1.25.0")
    env_hash = cli("hash", spec).out.strip()
    first = cli("env", "register", spec)
    assert first.out == f"anonymous@{env_hash[:12]}\n", first.err
    assert cli("env", "register", spec, "--json").out.count('"reused": true') == 1
    shown = _json(cli("env", "show", f"anonymous@{env_hash[:12]}", "--registry", anon.address, "--json").out)
    assert shown["name"] is None and shown["hash"] == env_hash


@pytest.mark.integration
def test_a_second_machine_reads_the_versions_from_the_registry(
    cli, anon: AuthRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _write(tmp_path / "m", f"{anon.address}/team", name="shared")
    assert cli("env", "register", spec).code == 0
    _write(tmp_path / "m", f"{anon.address}/team", name="shared", numpy="2.0.0")
    assert cli("env", "register", spec).code == 0
    mine = cli("env", "show", "shared@2", "--spec", spec, "--json").out

    monkeypatch.setenv("LAYERKIT_CACHE", str(tmp_path / "machine-b"))
    monkeypatch.setenv("LAYERKIT_REGISTRY", f"{anon.address}/team")
    listed = cli("env", "list")
    assert listed.code == 0 and listed.out == "shared  1 2\n", listed.err
    assert cli("env", "show", "shared@2", "--json").out == mine
    d = cli("env", "diff", "shared@1", "shared@2")
    assert d.code == 0 and "  ~ numpy 1.26.4 py311h0_0 -> 2.0.0 py311h0_0" in d.out
    # The artifact other tools see: config blob = the canonical record, custom media type.
    client = OciClient()
    raw, media, _ = client.get_manifest(ImageRef.parse(f"{anon.address}/team/layerkit-envs/shared:2"))
    manifest = json.loads(raw)
    assert media == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == CONFIG_MEDIA_TYPE
    blob = client.get_blob(anon.address, "team/layerkit-envs/shared", manifest["config"]["digest"])
    record = json.loads(blob)
    assert blob == json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert record == json.loads(mine)
    # Machine B's index now holds the version, content-addressed: the manifest it came from and
    # the record, each under its own digest.
    cached = (tmp_path / "machine-b" / "envs").rglob("shared/2.json")
    (entry,) = [json.loads(p.read_text()) for p in cached]
    head = client.head_manifest(ImageRef.parse(f"{anon.address}/team/layerkit-envs/shared:2"))
    assert head is not None and entry == {"manifest_digest": head.digest}
    blobs = tmp_path / "machine-b" / "envs" / "blobs" / "sha256"
    assert (blobs / head.digest.removeprefix("sha256:")).read_bytes() == raw
    assert (blobs / manifest["config"]["digest"].removeprefix("sha256:")).read_bytes() == blob


FORGED = "evil.example/forged:1"


def _forge_record(blobs: Path, ref_file: Path) -> None:
    """Write a self-consistent forged record and manifest into the index and point the
    version at them, as a writer of the cache could: content addressing alone cannot stop it."""
    digest = json.loads(ref_file.read_text())["manifest_digest"]
    manifest = json.loads((blobs / digest.removeprefix("sha256:")).read_bytes())
    record = json.loads((blobs / manifest["config"]["digest"].removeprefix("sha256:")).read_bytes())
    forged = json.dumps(dict(record, image=FORGED), sort_keys=True, separators=(",", ":")).encode()
    manifest["config"]["digest"] = "sha256:" + hashlib.sha256(forged).hexdigest()
    raw = json.dumps(manifest).encode()
    (blobs / hashlib.sha256(forged).hexdigest()).write_bytes(forged)
    (blobs / hashlib.sha256(raw).hexdigest()).write_bytes(raw)
    ref_file.write_text(json.dumps({"manifest_digest": "sha256:" + hashlib.sha256(raw).hexdigest()}))


@pytest.mark.integration
@pytest.mark.parametrize("how", ["edited in place", "forged and re-pointed"])
def test_a_tampered_local_index_never_shows_while_the_registry_is_online(
    cli, anon: AuthRegistry, tmp_path: Path, how: str
) -> None:
    """Issue 15 §4: the registry's manifest is the truth; the local index only a cache."""
    spec = _write(tmp_path / "t", anon.address, name=f"tamper-{how.split()[0]}")
    name = f"tamper-{how.split()[0]}"
    assert cli("env", "register", spec).code == 0
    truth = cli("env", "show", f"{name}@1", "--spec", spec, "--json")
    assert truth.code == 0 and FORGED not in truth.out
    index = tmp_path / "machine-a" / "envs"
    blobs = index / "blobs" / "sha256"
    (ref_file,) = index.rglob(f"{name}/1.json")
    if how == "edited in place":
        digest = json.loads(ref_file.read_text())["manifest_digest"]
        manifest = json.loads((blobs / digest.removeprefix("sha256:")).read_bytes())
        record_file = blobs / manifest["config"]["digest"].removeprefix("sha256:")
        record = json.loads(record_file.read_bytes())
        record_file.write_text(json.dumps(dict(record, image=FORGED), sort_keys=True, separators=(",", ":")))
    else:
        _forge_record(blobs, ref_file)
    assert FORGED.encode() in b"".join(p.read_bytes() for p in blobs.iterdir())  # the forgery is there
    shown = cli("env", "show", f"{name}@1", "--spec", spec, "--json")
    assert shown.code == 0 and shown.out == truth.out and FORGED not in shown.out + shown.err
    listed = cli("env", "list", name, "--spec", spec, "--json")
    assert listed.code == 0 and FORGED not in listed.out


@pytest.mark.integration
def test_an_index_edited_in_place_shows_nothing_offline(cli, tmp_path: Path) -> None:
    with registry(tmp_path / "short-lived") as reg:
        spec = _write(tmp_path / "o", reg.address, name="edited")
        assert cli("env", "register", spec).code == 0
    blobs = tmp_path / "machine-a" / "envs" / "blobs" / "sha256"
    for p in blobs.iterdir():
        if b'"image"' in p.read_bytes():
            p.write_bytes(p.read_bytes().replace(b'"image":"', f'"image":"{FORGED}#'.encode()))
    shown = cli("env", "show", "edited", "--registry", reg.address)
    assert shown.code == 2 and FORGED not in shown.out + shown.err


@pytest.mark.integration
def test_registry_down_register_fails_show_falls_back_to_the_local_index(cli, tmp_path: Path) -> None:
    with registry(tmp_path / "short-lived") as reg:
        spec = _write(tmp_path / "d", reg.address, name="offline")
        assert cli("env", "register", spec).code == 0
        _write(tmp_path / "d", reg.address, name="offline", numpy="1.26.6")
        assert cli("env", "register", spec).code == 0
    down = cli("env", "register", spec)
    assert down.code == 3
    assert f"registry {reg.address} is unreachable" in down.err and "needs it" in down.err
    assert "Traceback" not in down.err
    shown = cli("env", "show", "offline", "--registry", reg.address)
    assert shown.code == 0 and "version: 2\n" in shown.out
    assert "warning:" in shown.err and "local index" in shown.err
    listed = cli("env", "list", "offline", "--registry", reg.address)
    assert listed.code == 0 and [line.split()[0] for line in listed.out.splitlines()] == ["1", "2"]
    d = cli("env", "diff", "offline@1", "offline@2", "--registry", reg.address)
    assert d.code == 0 and "numpy 1.26.4 py311h0_0 -> 1.26.6 py311h0_0" in d.out
    missing = cli("env", "show", "offline@9", "--registry", reg.address)
    assert missing.code == 2 and "only the local index" in missing.err
    nowhere = cli("env", "show", "offline", "--registry", f"localhost:{refused_port()}")
    assert nowhere.code == 2 and "no environment 'offline'" in nowhere.err


@pytest.mark.integration
def test_private_registry_credentials_from_the_spec_never_reach_output_or_records(
    cli, authed: AuthRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LK_TEST_USER", authed.username)
    monkeypatch.setenv("LK_TEST_PASSWORD", authed.password)
    spec = _write(tmp_path / "s", authed.address, name="secure", creds=True)
    outputs = [cli("env", "register", spec), cli("env", "register", spec, "--json")]
    _write(tmp_path / "s", authed.address, name="secure", creds=True, numpy="1.26.7")
    outputs += [cli("env", "register", spec, "--json")]
    assert [r.code for r in outputs] == [0, 0, 0], [r.err for r in outputs]
    assert _json(outputs[-1].out)["version"] == "2"
    for args in (
        ("list",),
        ("list", "secure"),
        ("show", "secure", "--json"),
        ("diff", "secure@1", "secure@2"),
    ):
        r = cli("env", *args, "--spec", spec)
        assert r.code == 0, r.err
        outputs.append(r)
    # Credentials from a docker config (`docker login`) serve readers without the spec.
    config = tmp_path / "docker"
    config.mkdir()
    auth = f"{authed.username}:{authed.password}".encode()
    (config / "config.json").write_text(
        json.dumps({"auths": {authed.address: {"auth": base64.b64encode(auth).decode()}}})
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    viewer = cli("env", "show", "secure@1", "--registry", authed.address)
    assert viewer.code == 0 and "version: 1" in viewer.out
    outputs.append(viewer)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "none"))
    anonymous = cli("env", "show", "secure", "--registry", authed.address)
    assert anonymous.code == 3 and "needs credentials" in anonymous.err
    monkeypatch.setenv("LK_TEST_PASSWORD", "not-the-password")
    wrong = cli("env", "register", spec)
    assert wrong.code == 3 and "refused the credentials" in wrong.err and "$LK_TEST_PASSWORD" in wrong.err
    outputs += [anonymous, wrong]
    for r in outputs:
        assert authed.password not in r.out + r.err and "not-the-password" not in r.out + r.err
    stored = [p.read_text() for p in (tmp_path / "machine-a").rglob("*") if p.is_file()]
    assert stored and not any(authed.password in s or "LK_TEST" in s for s in stored)
    creds = Credentials(authed.username, authed.password)
    client = OciClient(lambda host: creds)
    raw, _, _ = client.get_manifest(ImageRef.parse(f"{authed.address}/layerkit-envs/secure:2"))
    blob = client.get_blob(
        authed.address, "layerkit-envs/secure", json.loads(raw)["config"]["digest"]
    ).decode()
    assert authed.password not in blob and authed.username not in blob and "LK_TEST" not in blob


def test_register_without_a_registry_is_bad_input(cli, tmp_path: Path) -> None:
    spec = _write(tmp_path / "n", "localhost:1")
    spec.write_text(spec.read_text().split("registry:")[0])
    r = cli("env", "register", spec, "--no-lock")
    assert r.code == 2 and "--registry" in r.err
    r = cli("env", "show", "x")
    assert r.code == 2 and "$LAYERKIT_REGISTRY" in r.err


# -- pure parts -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "norm"),
    [
        ("train-cpu", "train-cpu"),
        ("Train CPU", "train-cpu"),
        ("a__b..c", "a-b-c"),
        ("-x_", "x"),
        ("v1.2", "v1.2"),
    ],
)
def test_names_normalise_to_repository_components(name: str, norm: str) -> None:
    assert normalise_name(name) == norm
    ImageRef.parse(f"localhost:5000/envs/{norm}:1")  # a valid repository


def test_versions_order_numbers_numerically_and_reserved_versions_are_refused() -> None:
    assert sort_versions(["10", "2", "1.10", "1.9", "1", "1.0-rc1"]) == [
        "1",
        "1.0-rc1",
        "1.9",
        "1.10",
        "2",
        "10",
    ]
    for bad in ("latest", HASH_TAG_PREFIX + "x", "a b", "", ".x"):
        with pytest.raises(SpecError):
            check_version(bad)
    assert check_version("2024.06_1") == "2024.06_1"
    with pytest.raises(SpecError):
        normalise_name("---")


def test_refs_parse_name_and_version() -> None:
    assert parse_ref("train") == ("train", None)
    assert parse_ref("train@latest") == ("train", None)
    assert parse_ref("team@ml@3") == ("team@ml", "3")
    for bad in ("@3", "train@"):
        with pytest.raises(SpecError):
            parse_ref(bad)


def _record(version: str, packages: list[tuple[str, str, str]], **kw: object) -> EnvRecord:
    pkgs = tuple(
        Package(manager="conda", name=n, version=v, build=b, checksum=f"md5:{n}{v}{b}")
        for n, v, b in packages
    )
    fields: dict[str, object] = {
        "name": "x", "version": version, "hash": hashlib.sha256(repr((packages, kw)).encode()).hexdigest(),
        "stages": {}, "image": "r/x:h", "base": BaseImage(image="debian:12"), "platforms": {"linux-64": pkgs},
        "registered_at": "2026-01-01T00:00:00Z", "layerkit_version": "0", **kw,
    }  # fmt: skip
    return EnvRecord.model_validate(fields)


def test_diff_of_records_lists_added_removed_changed_and_rebuilt() -> None:
    old = _record("1", [("a", "1", "0"), ("b", "1", "0"), ("c", "1", "0")], apt=("git",))
    new = _record("2", [("a", "2", "0"), ("c", "1", "1"), ("d", "1", "0")], apt=("curl",), env={"K": "v"})
    d = diff(old, new)
    pd = d.platforms["linux-64"]
    assert [p.name for p in pd.added] == ["d"] and [p.name for p in pd.removed] == ["b"]
    assert [(c.name, c.old.version, c.new.version, c.new.build) for c in pd.changed] == [
        ("a", "1", "2", "0"),
        ("c", "1", "1", "1"),
    ]
    assert d.apt.added == ("curl",) and d.apt.removed == ("git",) and d.env == {"K": (None, "v")}
    assert d.base is None and not d.identical
    assert diff(old, old).identical and not diff(old, old).platforms
    doc = d.to_json()
    assert json.loads(json.dumps(doc, sort_keys=True)) == doc
    rebuilt = diff(old, _record("3", [("a", "1", "0"), ("b", "1", "0"), ("c", "1", "0")], apt=("git", "x")))
    assert not rebuilt.platforms and rebuilt.apt.added == ("x",)


def test_records_round_trip_canonically_and_reject_other_schemas() -> None:
    r = _record("1", [("a", "1", "0")])
    assert EnvRecord.parse(r.canonical(), "here") == r
    doc = json.loads(r.canonical())
    doc["schema"] = "layerkit.env/2"
    with pytest.raises(Exception, match="newer layerkit"):
        EnvRecord.parse(json.dumps(doc).encode(), "here")


def test_records_without_the_digest_fields_still_parse_and_new_ones_round_trip() -> None:
    # Records written before the image digests were recorded (issue 18) lack the fields.
    r = _record("1", [("a", "1", "0")])
    old = json.loads(r.canonical())
    for key in ("digests", "index", "index_digest"):
        del old[key]
    parsed = EnvRecord.parse(json.dumps(old).encode(), "here")
    assert parsed.digests == {} and parsed.index is None and parsed.index_digest is None
    d = "sha256:" + "a" * 64
    new = r.model_copy(update={"digests": {"linux-64": d}, "index": "r/x:h", "index_digest": d})
    assert EnvRecord.parse(new.canonical(), "here") == new
    assert json.loads(new.canonical())["digests"] == {"linux-64": d}
