"""Faults on Docker 26 during a real `layerkit build` (a subprocess, `--progress json`).

Each test has a registry of its own on the session's Docker 26 (the daemon test a Docker 26
of its own too: it kills it) and catches the build at the moment it wants by events, never a
sleep: a request held at the air-gapped channel (the env install step is downloading) or at a
proxy in front of the registry (a blob upload of the image push or of the cache export has
begun), and the progress event of that step.

After each fault: the documented exit code (3 daemon/registry, 130 interrupted) and one
error line last, no traceback; the build lock is free and the run left nothing in its TMPDIR;
the registry holds each image and cache either in full or not at all (a skip-by-hash must
never find half of one); once the service is back, the same spec builds (or is found whole)
and its image, pulled afresh, runs the locked package versions.
"""

from __future__ import annotations

import fcntl
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import fixtures_build as fb
import fixtures_faults as ff
import fixtures_ownregistry as fo
import fixtures_services as fs
import pytest

pytestmark = pytest.mark.integration

MLKIT_OUT = "mlkit 1.0 on corelib 1.5: fib(12) = 144"  # the lock: mlkit 1.0, datakit 1.0 -> corelib 1.5
METAS = ("mlkit-1.0-h0_0.json", "corelib-1.5-h0_0.json", "datakit-1.0-h0_0.json")


@pytest.fixture(scope="module")
def hold() -> Iterator[ff.Hold]:
    h = ff.Hold()
    yield h
    h.release()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, hold: ff.Hold) -> Iterator[fb.Site]:
    with fb.airgap_site(tmp_path_factory.mktemp("site"), on_get=hold) as s:
        yield s


@dataclass(frozen=True)
class Case:
    svc: fs.Services
    dirs: ff.ServiceDirs
    registry: str  # the spec's registry: the real one, or the proxy in front of it
    spec: Path
    repo: str
    tmpdir: Path  # each layerkit run's TMPDIR
    proxy: ff.TapProxy | None = None  # in front of the registry: refuses while it is down

    @property
    def addr(self) -> str:
        return f"docker://{self.svc.docker_host}"

    def start(self) -> ff.LayerkitBuild:
        return ff.LayerkitBuild(self.spec, self.addr, self.tmpdir)

    def kill_registry(self) -> None:
        self.dirs.kill_registry()
        if self.proxy:
            self.proxy.refuse()

    def start_registry(self) -> None:
        self.dirs.start_registry()
        if self.proxy:
            self.proxy.listen()

    def refs(self) -> dict[str, str]:
        """The image, its stage images and each one's registry cache ("cache image", ...), by role."""
        from layerkit import api
        from layerkit.build.request import targets

        h = api.render(self.spec).hash
        plan = targets(f"{self.registry}/{self.repo}", h.hash, h.stages)
        return {t.label: t.ref for t in plan} | {f"cache {t.label}": t.cache_ref for t in plan}

    def registry_states(self) -> dict[str, str]:
        """'absent' or 'complete' per role; image_state raises on a manifest with missing blobs."""
        return {role: ff.image_state(self.registry, ref) for role, ref in self.refs().items()}

    def lock_is_free(self) -> bool:
        from layerkit import api
        from layerkit.build.builder import build_lock_path

        path = build_lock_path(api.render(self.spec).hash.hash)
        assert path.exists(), path  # the build got as far as taking it
        with open(path, "a+b") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(fh, fcntl.LOCK_UN)
        return True


def make_case(
    tmp_path: Path, site: fb.Site, svc: fs.Services, registry: str, proxy: ff.TapProxy | None = None
) -> Case:
    repo = f"t/{uuid.uuid4().hex[:8]}"
    spec = fb.site_spec(tmp_path / "spec", site, svc, repo=repo, registry=registry)
    tmpdir = svc.root / "tmp"  # short: the bridge socket's path must stay under 108 bytes
    tmpdir.mkdir()
    return Case(svc, ff.ServiceDirs.of(svc), registry, spec, repo, tmpdir, proxy)


@pytest.fixture
def svc(services: fs.Services, hold: ff.Hold) -> Iterator[fs.Services]:
    """Docker 26 and a registry of this test's own: it kills the daemon, mid-step of a cold
    build (no BuildKit cache, no package cache mount of an earlier build)."""
    with fo.registry_like(services, own_dockerd=True) as s:
        yield s
        hold.release()  # nothing may stay blocked into the next test


@pytest.fixture
def own_registry(services: fs.Services, hold: ff.Hold) -> Iterator[fs.Services]:
    """The session's Docker 26 and a registry of this test's own (it kills it), holding the
    session's base image. These tests kill a registry or interrupt a build, never the daemon;
    what they check happens in uploads, which every build makes into its own empty registry
    whatever BuildKit has cached, and in the solves layerkit asks for, which follow that
    registry's state: their builds may run on a cache warmed by earlier builds."""
    with fo.registry_like(services) as s:
        yield s
        hold.release()  # nothing may stay blocked into the next test


@pytest.fixture
def direct(tmp_path: Path, site: fb.Site, svc: fs.Services) -> Case:
    return make_case(tmp_path, site, svc, svc.registry)


@pytest.fixture
def proxied(tmp_path: Path, site: fb.Site, own_registry: fs.Services, hold: ff.Hold) -> Iterator[Case]:
    """The spec's registry is a TapProxy in front of the real one (which it outlives)."""
    proxy = ff.TapProxy(ff.ServiceDirs.of(own_registry).registry_port, hold)
    yield make_case(tmp_path, site, own_registry, f"localhost:{proxy.port}", proxy)
    proxy.close()


def failed_with(case: Case, result: tuple[int, str, str], code: int) -> str:
    """The run exited ``code``, printed no result, ended stderr with one error line, left its
    TMPDIR empty and freed the build lock; that line."""
    got, out, err = result
    assert got == code, err[-3000:]
    assert out == "", out
    assert "Traceback" not in err, err[-3000:]
    last = err.rstrip("\n").splitlines()[-1]
    assert last.startswith("layerkit: "), err[-3000:]
    assert list(case.tmpdir.iterdir()) == []
    assert case.lock_is_free()
    return last


def step(words: str, state: str = "RUNNING") -> Callable[[dict[str, object]], bool]:
    return lambda ev: ev.get("event") == "step" and words in str(ev.get("name")) and ev.get("state") == state


def recovers(case: Case) -> dict[str, object]:
    """The same spec builds, or is found whole; pulled afresh, its image runs the lock."""
    doc = ff.run_build(case.spec, case.addr, case.tmpdir)
    assert doc["action"] in ("built", "found"), doc
    assert list(case.tmpdir.iterdir()) == []
    assert case.registry_states()["image"] == "complete"
    client = docker.DockerClient(base_url=case.svc.docker_host, timeout=600)
    try:
        for img in client.images.list():
            client.images.remove(img.id, force=True)
        client.images.pull(str(doc["image"]))
        cmd = ["sh", "-c", "mlkit 12 && ls /opt/env/conda-meta"]
        out = fs.container_output(client, str(doc["image"]), cmd).decode()
    finally:
        client.close()
    assert MLKIT_OUT in out, out
    assert all(meta in out for meta in METAS), out
    return doc


def test_daemon_killed_mid_build(direct: Case, hold: ff.Hold) -> None:
    # The env install step is downloading mlkit from the channel: held there, mid-step.
    hold.arm(lambda path: "/mlkit-1.0-" in path)
    build = direct.start()
    hold.wait_hit(build)
    build.wait_event(step("] RUN --mount=type=cache"))
    direct.dirs.kill_dockerd()
    hold.release()
    last = failed_with(direct, build.finish(), 3)
    assert f"lost BuildKit at {direct.addr} during the build" in last, last
    assert set(direct.registry_states().values()) == {"absent"}  # killed before any export

    direct.dirs.start_dockerd()
    doc = recovers(direct)
    assert doc["action"] == "built" and doc["pushed"], doc


def test_registry_killed_mid_cache_export(proxied: Case, hold: ff.Hold) -> None:
    hold.arm(ff.upload_to(f"{proxied.repo}-cache"))  # the first blob of the mode=max cache export
    build = proxied.start()
    hold.wait_hit(build)
    build.wait_event(step("exporting cache to registry"))
    proxied.kill_registry()
    hold.release()  # the held upload now meets a dead registry
    last = failed_with(proxied, build.finish(), 3)
    assert "'exporting cache to registry' failed" in last and proxied.registry in last, last
    assert not [ev for ev in build.events() if step("exporting cache", "DONE")(ev)]

    proxied.start_registry()
    # The image's cache export is the first upload: nothing else was pushed, and the image,
    # which skip-by-hash would find, goes in last, so the next run builds and pushes it all.
    assert set(proxied.registry_states().values()) == {"absent"}
    doc = recovers(proxied)
    assert doc["action"] == "built" and doc["pushed"], doc
    assert set(proxied.registry_states().values()) == {"complete"}


def test_interrupt_during_image_export(proxied: Case, hold: ff.Hold) -> None:
    hold.arm(ff.upload_to(proxied.repo))  # the image exporter's first blob upload
    build = proxied.start()
    hold.wait_hit(build)
    build.wait_event(step("exporting to image"))
    build.interrupt()
    last = failed_with(proxied, build.finish(), 130)
    assert last == "layerkit: interrupted", last
    # The daemon gave the push up with the build: it closed the upload it was waiting on.
    assert hold.dropped.wait(ff.WAIT), "BuildKit still holds its upload after Ctrl-C"
    states = proxied.registry_states()
    assert states["image"] == "absent", states
    hold.release()

    doc = recovers(proxied)
    assert doc["action"] == "built" and doc["pushed"], doc
    assert set(proxied.registry_states().values()) == {"complete"}


def test_a_failing_step_is_named_not_the_cold_cache_import(
    tmp_path: Path, site: fb.Site, services: fs.Services
) -> None:
    # Not a fault but its neighbour: on a registry with no cache yet BuildKit shows the cache
    # import as an errored step and builds on; the error names the step that failed, with its
    # log tail, whichever of the two BuildKit reported first.
    spec = fb.site_spec(tmp_path, site, services, repo=f"t/{uuid.uuid4().hex[:8]}", lock=False)
    spec.write_text(spec.read_text().replace("['mlkit', '12']", "['sh', '-c', 'mlkit 12 && exit 7']"))
    fb.lock_spec(spec)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    code, out, err = ff.LayerkitBuild(spec, f"docker://{services.docker_host}", tmpdir).finish()
    assert (code, out) == (3, ""), err[-3000:]
    assert "Traceback" not in err
    *_, tail, last = err.rstrip("\n").splitlines()
    assert last.startswith('layerkit: error: BuildKit step \'[runtime 2/3] RUN ["sh", "-c"'), last
    assert "exit code: 7" in last, last
    assert MLKIT_OUT in tail, err[-3000:]  # the step's log tail comes first


def planned(case: Case) -> dict[str, object]:
    """What `layerkit plan` decides for the case's spec now (the decision build must carry out)."""
    from layerkit import api
    from layerkit.build.builder import BuildOptions

    return api.plan(case.spec, options=BuildOptions(addr=case.addr)).decision.to_json()


def test_registry_killed_mid_stage_push_is_not_found_later(proxied: Case, hold: ff.Hold) -> None:
    # Issue 15 §4: the env stage image's push dies. The image, pushed last, is not in the
    # registry, so the next run cannot say "found" with the env stage image missing.
    hold.arm(ff.upload_to(f"{proxied.repo}-env"))  # the env stage image's first blob upload
    build = proxied.start()
    hold.wait_hit(build)  # held there, the build is mid-push
    proxied.kill_registry()
    hold.release()
    failed_with(proxied, build.finish(), 3)

    proxied.start_registry()
    states = proxied.registry_states()
    assert (states["image"], states["env"], states["base"]) == ("absent", "absent", "complete"), states
    decision = planned(proxied)
    assert decision["action"] == "build", decision
    assert [(s["stage"], s["build"]) for s in decision["stage_images"]] == [("base", False), ("env", True)]  # type: ignore[union-attr]
    doc = recovers(proxied)
    assert doc["action"] == "built" and doc["decision"] == decision, doc
    assert doc["solved"] == ["image", "env", "publish"], doc
    assert set(proxied.registry_states().values()) == {"complete"}
    assert planned(proxied)["action"] == "found"


def test_registry_killed_while_the_image_is_published_reuses_the_stage_images(
    proxied: Case, hold: ff.Hold
) -> None:
    # Every stage image and cache is in when the image's own push dies: the next run solves and
    # publishes only the image, on the stage images the registry already holds.
    hold.arm(ff.upload_to(proxied.repo))  # the image's first blob upload: the publish solve's
    build = proxied.start()
    hold.wait_hit(build)
    proxied.kill_registry()
    hold.release()
    failed_with(proxied, build.finish(), 3)

    proxied.start_registry()
    states = proxied.registry_states()
    assert states.pop("image") == "absent" and set(states.values()) == {"complete"}, states
    decision = planned(proxied)
    assert decision["action"] == "build", decision
    assert [s["build"] for s in decision["stage_images"]] == [False, False]  # type: ignore[union-attr]
    doc = recovers(proxied)
    assert doc["action"] == "built" and doc["decision"] == decision, doc
    assert doc["solved"] == ["image", "publish"], doc
    assert set(proxied.registry_states().values()) == {"complete"}
