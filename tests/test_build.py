"""`layerkit build` end to end: real dockerd 26 (conftest `services`), real registries, real locks.

The environment is locked with conda-lock against a local channel of packages that really
run (tests/fixtures_build.py) and installed in the image by py-rattler from a local PyPI
mirror: an air-gapped build, reaching 127.0.0.1 through `--network host`.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import fixtures_build as fb
import pytest
from fixtures_build import build_spec as build
from fixtures_build import site_spec as make_spec
from fixtures_build import step_states
from fixtures_services import AuthRegistry, Services, container_output, refused_port

from layerkit import api
from layerkit.build.builder import BuildOptions
from layerkit.build.client import BuildkitClient
from layerkit.build.progress import Progress

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fb.Site]:
    with fb.airgap_site(tmp_path_factory.mktemp("site")) as s:
        yield s


def engine(services: Services) -> docker.DockerClient:
    return docker.DockerClient(base_url=services.docker_host)


def run_in(services: Services, image: str, *cmd: str) -> str:
    return container_output(engine(services), image, list(cmd)).decode()


def test_build_runs_a_program_from_the_locked_environment(
    tmp_path: Path, site: fb.Site, services: Services
) -> None:
    repo = f"t/{uuid.uuid4().hex[:8]}"
    spec = make_spec(tmp_path, site, services, repo=repo)
    events = io.StringIO()
    opts = BuildOptions(addr=f"docker://{services.docker_host}", network="host")
    result = api.build(spec, options=opts, progress=Progress("json", stream=events))
    assert result.action == "built" and result.pushed
    # An engine whose frontend refuses COPY --link (dockerd 20.10) built without it, and said so once.
    with BuildkitClient(opts.addr) as client:
        takes_link = client.capabilities().copy_link
    said = [
        e for e in map(json.loads, events.getvalue().splitlines()) if "no COPY --link" in e.get("text", "")
    ]
    assert len(said) == (0 if takes_link else 1), said
    assert result.image == f"{services.registry}/{repo}:{api.hash_spec(spec).hash}"
    assert set(result.stages) == {"base", "env"}
    assert result.size and result.size > 1_000_000
    assert result.digest and result.digest.startswith("sha256:")
    # The image came back from the registry, not from the engine's store.
    engine(services).images.remove(result.image, force=True)
    engine(services).images.pull(result.image)
    out = run_in(services, result.image, "mlkit", "30")
    assert out == "mlkit 1.0 on corelib 1.5: fib(30) = 832040\n"
    assert run_in(services, result.image, "cat", "/opt/env/share/datakit/VERSION") == "1.0\n"
    labels = engine(services).images.get(result.image).labels
    assert labels["io.layerkit.hash"] == result.hash
    assert result.total_steps >= 8 and result.cached_steps < result.total_steps


def test_one_package_change_reuses_base_steps_and_unchanged_build_does_not_solve(
    tmp_path: Path, site: fb.Site, services: Services
) -> None:
    repo = f"t/{uuid.uuid4().hex[:8]}"
    # A base step of its own: the install of "a" really runs here, filling the package cache.
    own = f"steps:\n  - run: ['echo', '{uuid.uuid4().hex}']\n    stage: base\n"
    first, _ = build(make_spec(tmp_path / "a", site, services, repo=repo, extra=own), services)
    spec = make_spec(
        tmp_path / "b", site, services, repo=repo, deps=["python=3.11", "datakit=1.1", "mlkit=1.0"], extra=own
    )
    site.channel_requests.clear()
    second, progress = build(spec, services)
    assert second.hash != first.hash and second.action == "built"
    # The builder's package cache (a cache mount, not a layer) served what did not change. It
    # is shared by every build on the engine, so whether it already held a changed package
    # depends on the tests that ran before: only the unchanged ones are pinned down.
    fetched = {
        p.rsplit("/", 1)[-1].rsplit("-", 1)[0]
        for p in site.channel_requests
        if p.endswith((".conda", ".tar.bz2"))
    }
    assert fetched <= {"corelib-2.1", "datakit-1.1"}, fetched
    states = step_states(progress)
    base_steps = {n: c for n, c in states.items() if n.startswith("[base ")}
    assert base_steps and all(base_steps.values()), states
    assert not states[next(n for n in states if "install_env.py --prefix" in n)], (
        "the env was not reinstalled"
    )
    assert run_in(services, second.image, "mlkit", "5") == "mlkit 1.0 on corelib 2.1: fib(5) = 5\n"
    # Unchanged spec: found by hash; a dead BuildKit address proves no solve is attempted.
    dead = f"unix:///tmp/{uuid.uuid4().hex}.sock"
    again = api.build(spec, options=BuildOptions(addr=dead), progress=Progress("quiet"))
    assert again.action == "found" and again.image == second.image and again.total_steps == 0


def test_pruned_builder_rebuilds_from_the_registry_cache(
    tmp_path: Path, site: fb.Site, services: Services
) -> None:
    repo = f"t/{uuid.uuid4().hex[:8]}"
    spec = make_spec(tmp_path, site, services, repo=repo)
    cold, _ = build(spec, services)
    api_client = engine(services).api
    for ref in {cold.image, *cold.stages.values()}:
        api_client.remove_image(ref, force=True)
    api_client.prune_builds(all=True)
    warm, progress = build(spec, services, force=True)
    states = step_states(progress)
    cached = [n for n, c in states.items() if c]
    # Every step of the environment is found in the registry's cache.
    assert len(cached) == len(states), states
    assert warm.hash == cold.hash


def test_private_registry_with_auth_and_no_secret_anywhere(
    tmp_path: Path, site: fb.Site, services: Services, auth_registry: AuthRegistry, monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("LK_TEST_USER", auth_registry.username)
    monkeypatch.setenv("LK_TEST_PASS", auth_registry.password)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    creds = "  username_env: LK_TEST_USER\n  password_env: LK_TEST_PASS\n"
    # The base image itself lives in the private registry: BuildKit pulls it with the
    # credentials the session's auth service hands out.
    from layerkit.build.credentials import Credentials
    from layerkit.build.registry import ImageRef, RegistryClient

    private_base = f"{auth_registry.address}/base/debian:bookworm"
    login = Credentials(auth_registry.username, auth_registry.password)
    RegistryClient(lambda host: login).copy(ImageRef.parse(services.base_image), ImageRef.parse(private_base))
    spec = make_spec(
        tmp_path / "spec",
        site,
        services,
        repo="team/env",
        registry=auth_registry.address,
        extra=creds,
        base=private_base,
    )
    progress = Progress("json")
    opts = BuildOptions(addr=f"docker://{services.docker_host}", network="host")
    result = api.build(spec, options=opts, progress=progress)
    assert result.action == "built" and result.pushed
    assert result.image.startswith(auth_registry.address + "/team/env:")
    again = api.build(spec, options=opts, progress=Progress("json"))
    assert again.action == "found"
    out, err = capfd.readouterr()
    secret = auth_registry.password
    assert secret not in out + err
    for path in spec.parent.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    # Pulled as a user would: the image exporter's push leaves no unpacked snapshot on
    # Docker 26's containerd store, so history() needs the image unpacked.
    auth = {"username": auth_registry.username, "password": secret}
    image = engine(services).images.pull(result.image, auth_config=auth)
    history = json.dumps(image.history()) + json.dumps(image.attrs)
    assert secret not in history
    # Wrong password: the registry refuses, the error names the variables, not the value.
    monkeypatch.setenv("LK_TEST_PASS", "wrong-" + secret[:4])
    proc = subprocess.run(
        [sys.executable, "-m", "layerkit", "build", "--force", "--progress", "plain", "--addr",
         f"docker://{services.docker_host}", "--network", "host", str(spec)],
        capture_output=True, text=True, env={**os.environ},
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert secret not in proc.stdout + proc.stderr
    # No credentials for the private base: BuildKit's pull is refused, the step fails with exit 3.
    from layerkit.errors import DaemonError

    bare = make_spec(tmp_path / "bare", site, services, repo="t/bare", base=private_base)
    with pytest.raises(DaemonError, match=r"(?i)unauthori|401|denied"):
        api.build(bare, options=opts, progress=Progress("quiet"))


def test_daemon_down_is_exit_3_and_registry_down_only_warns(
    tmp_path: Path, site: fb.Site, services: Services, cli: object
) -> None:
    dead_registry = f"localhost:{refused_port()}"
    spec = make_spec(tmp_path, site, services, repo="t/down", registry=dead_registry)
    dead = f"unix:///tmp/{uuid.uuid4().hex}.sock"
    res = cli("build", "--addr", dead, "--progress", "plain", spec)  # type: ignore[operator]
    assert res.code == 3
    assert "cannot reach" in res.err and "Traceback" not in res.err
    res = cli("build", "--json", "--addr", f"docker://{services.docker_host}", "--network", "host",  # type: ignore[operator]
              "--progress", "plain", spec)  # fmt: skip
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["action"] == "built" and doc["pushed"] is False
    assert any("unreachable" in w for w in doc["warnings"]), doc
    assert "unreachable" in res.err
    assert engine(services).images.get(doc["image"])  # built into the engine all the same


def test_concurrent_builds_of_one_hash_build_once(tmp_path: Path, site: fb.Site, services: Services) -> None:
    spec = make_spec(tmp_path, site, services, repo=f"t/{uuid.uuid4().hex[:8]}")
    cmd = [sys.executable, "-m", "layerkit", "build", "--json", "--progress", "quiet", "--network", "host",
           "--addr", f"docker://{services.docker_host}", str(spec)]  # fmt: skip
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    docs = []
    for p in procs:
        out, err = p.communicate(timeout=1800)  # bounds a hang only
        assert p.returncode == 0, err
        docs.append(json.loads(out))
    assert sorted(d["action"] for d in docs) == ["built", "found"]
    assert docs[0]["image"] == docs[1]["image"]


def test_global_registry_hit_is_copied_into_the_workspace(
    tmp_path: Path,
    site: fb.Site,
    services: Services,
    auth_registry: AuthRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = f"t/{uuid.uuid4().hex[:8]}"
    # Publish into the "global" registry (the anonymous one) first.
    published, _ = build(make_spec(tmp_path / "g", site, services, repo=repo), services)
    monkeypatch.setenv("LK_TEST_USER", auth_registry.username)
    monkeypatch.setenv("LK_TEST_PASS", auth_registry.password)
    extra = f"  username_env: LK_TEST_USER\n  password_env: LK_TEST_PASS\n  global_registries: [{services.registry}]\n"
    spec = make_spec(tmp_path / "w", site, services, repo=repo, registry=auth_registry.address, extra=extra)
    dead = f"unix:///tmp/{uuid.uuid4().hex}.sock"  # copying needs no BuildKit
    result = api.build(spec, options=BuildOptions(addr=dead), progress=Progress("quiet"))
    assert result.action == "copied" and result.source == published.image
    assert result.image == f"{auth_registry.address}/{repo}:{published.hash}"
    assert result.digest is not None and result.size == published.size


def test_large_context_goes_through_filesync(
    tmp_path: Path, site: fb.Site, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    import layerkit.build.context as context

    monkeypatch.setattr(context, "INLINE_CONTEXT_MAX", 0)  # every context is "too big" for inline LLB
    spec = make_spec(tmp_path, site, services, repo=f"t/{uuid.uuid4().hex[:8]}")
    result, _ = build(spec, services, push=False)
    assert result.action == "built"
    assert run_in(services, result.image, "mlkit", "3") == "mlkit 1.0 on corelib 1.5: fib(3) = 2\n"


def test_ctrl_c_cancels_the_solve(tmp_path: Path, site: fb.Site, services: Services) -> None:
    import signal
    import threading

    spec = make_spec(tmp_path, site, services, repo=f"t/{uuid.uuid4().hex[:8]}")
    # A step that would outlast the test's own bound: the build can only end early if cancelled.
    spec.write_text(spec.read_text() + f"  - run: 'sleep 86400 # {uuid.uuid4().hex}'\n    stage: final\n")
    fb.lock_spec(spec)
    cmd = [sys.executable, "-m", "layerkit", "build", "--progress", "json", "--network", "host",
           "--addr", f"docker://{services.docker_host}", str(spec)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(1800, proc.kill)  # bounds a hang only: kills a build Ctrl-C left running
    watchdog.start()
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # wait until BuildKit runs the sleep
            if line.startswith("{") and "sleep 86400" in line and '"RUNNING"' in line:
                break
        else:
            pytest.fail(f"the build ended before the sleep step ran (exit {proc.wait()})")
        proc.send_signal(signal.SIGINT)
        rest = proc.stderr.read()
        code = proc.wait()
    finally:
        watchdog.cancel()
    assert code == 130, f"exit {code}: the sleep was not cancelled\n{rest}"
    assert "interrupted" in rest and "Traceback" not in rest


def test_a_found_build_asks_the_registry_on_every_run(
    tmp_path: Path, site: fb.Site, services: Services, auth_registry: AuthRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """`make`/CI re-running an unchanged build: each run asks the registry (with the
    credentials of the moment) afresh; nothing earlier runs left behind answers for it."""
    from layerkit.build.credentials import Credentials
    from layerkit.build.registry import ImageRef, RegistryClient

    monkeypatch.setenv("LK_TEST_USER", auth_registry.username)
    monkeypatch.setenv("LK_TEST_PASS", auth_registry.password)
    creds = "  username_env: LK_TEST_USER\n  password_env: LK_TEST_PASS\n"
    spec = make_spec(
        tmp_path / "spec", site, services, repo=f"t/{uuid.uuid4().hex[:8]}", registry=auth_registry.address,
        extra=creds,
    )  # fmt: skip
    built, _ = build(spec, services)
    assert built.action == "built"
    dead = f"unix:///tmp/{uuid.uuid4().hex}.sock"  # no daemon is ever needed below
    env = {**os.environ, "LAYERKIT_CACHE": str(tmp_path / "cache")}

    def run(*extra: str, environ: dict[str, str] = env) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "layerkit", "build", "--addr", dead, *extra, str(spec)],
            capture_output=True, text=True, env=environ, timeout=120,
        )  # fmt: skip

    first, again = run("--json"), run("--json")
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    a, b = json.loads(first.stdout), json.loads(again.stdout)
    assert a["action"] == b["action"] == "found" and a["digest"] == b["digest"] == built.digest
    assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
    assert auth_registry.password not in again.stdout + again.stderr
    text = run()
    assert text.stdout == built.image + "\n" and f"found {built.image} in " in text.stderr
    # The tag now names other content: the next run reports the new digest.
    login = Credentials(auth_registry.username, auth_registry.password)
    RegistryClient(lambda host: login).copy(ImageRef.parse(built.stages["base"]), ImageRef.parse(built.image))
    moved = run("--json")
    assert moved.returncode == 0
    assert json.loads(moved.stdout)["digest"] not in (None, built.digest)
    # Credentials gone: the registry cannot be asked, and nothing answers in its place.
    no_pass = {k: v for k, v in env.items() if k != "LK_TEST_PASS"}
    refused = run("--json", environ=no_pass)
    assert refused.returncode == 3 and "LK_TEST_PASS" in refused.stderr


def test_make_builds_the_image_and_redoes_only_what_changed(
    tmp_path: Path, site: fb.Site, services: Services
) -> None:
    """The `layerkit make` chain with a real `layerkit build` (tests/test_make.py covers the
    lock and render links across several environments)."""
    from layerkit.build.registry import ImageRef, RegistryClient

    root = tmp_path / "proj"
    spec = make_spec(root / "envs" / "train", site, services, repo=f"t/{uuid.uuid4().hex[:8]}")
    rel = spec.relative_to(root)
    (root / "Makefile").write_text(
        f"LAYERKIT := {sys.executable} -m layerkit\n"
        f"LAYERKIT_BUILD_FLAGS := --addr docker://{services.docker_host} --network host --progress plain\n"
        "all: layerkit-all\n"
        "include layerkit.mk\n"
        f"layerkit.mk:\n\t$(LAYERKIT) make {rel} -o $@\n"
    )

    def make() -> tuple[str, list[Path]]:
        proc = subprocess.run(["make", "-j2", "all"], cwd=root, capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout, sorted((root / ".layerkit" / "images" / "demo-train").iterdir())

    out, stamps = make()
    assert " build " in out and len(stamps) == 1
    image = stamps[0].read_text().strip()
    assert image.endswith(":" + stamps[0].name)
    assert RegistryClient().head_manifest(ImageRef.parse(image)) is not None
    out, again = make()
    assert again == stamps and " build " not in out and " lock" not in out, out
    # A dependency changes: make relocks (the real solver), re-renders and builds the new hash.
    spec.write_text(spec.read_text().replace("datakit=1.0", "datakit=1.1"))
    out, after = make()
    assert " lock " in out and " build " in out, out
    new = next(p for p in after if p != stamps[0])
    assert RegistryClient().head_manifest(ImageRef.parse(new.read_text().strip())) is not None
    assert run_in(services, new.read_text().strip(), "mlkit", "5") == "mlkit 1.0 on corelib 2.1: fib(5) = 5\n"
