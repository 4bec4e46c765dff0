"""`layerkit serve` without an engine (issue 16 §2): the keys folder, the arguments, the
readiness wait (driven by a fake clock), the HTTP probe (a real loopback server) and what the
container is asked for. The end-to-end tests on the real engine: tests/test_serve_engine.py."""

from __future__ import annotations

import http.server
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures_services import refused_port

from layerkit.deploy import keys, local, readiness
from layerkit.errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EnvironmentFailure, SpecError

SPEC = "name: churn_scorer\nbase: {image: 'ubuntu:22.04'}\nuser_managed: true\n"


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    monkeypatch.setenv("LAYERKIT_CACHE", str(tmp_path / "cache"))
    return home


def _spec(tmp_path: Path, serve: str = "  entry_script: score.py\n") -> Path:
    path = tmp_path / "layerkit.yaml"
    path.write_text(SPEC + (f"serve:\n{serve}" if serve else ""))
    return path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- keys ---------------------------------------------------------------------------------


def test_keys_live_in_a_private_state_folder_never_in_the_cache(state_home: Path, tmp_path: Path) -> None:
    k = keys.ensure("churn-scorer")
    assert k.folder == state_home / "layerkit" / "serve" / "churn-scorer" / "keys"
    assert not (tmp_path / "cache").exists()
    # The deployment's folder shuts other users out; the mounted folder below it is readable
    # by the container's user, whatever its uid.
    for folder in (state_home / "layerkit", state_home / "layerkit" / "serve", k.folder.parent):
        assert _mode(folder) == 0o700, folder
    assert _mode(k.folder) == 0o755
    for which in keys.KEY_NAMES:
        assert _mode(k.folder / which) == 0o644
        assert (k.folder / which).read_text() == k.get(which) + "\n"
    assert k.primary != k.secondary
    for key in (k.primary, k.secondary):
        assert len(key) == 43 and set(key) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


def test_keys_are_kept_across_serves_and_a_missing_one_is_made(state_home: Path) -> None:
    first = keys.ensure("svc")
    assert keys.ensure("svc") == first
    (first.folder / "secondary").unlink()
    again = keys.ensure("svc")
    assert again.primary == first.primary and again.secondary not in ("", first.secondary)


def test_a_loose_state_folder_is_tightened(state_home: Path) -> None:
    folder = keys.deployment_dir("svc")
    folder.mkdir(parents=True, mode=0o777)
    folder.chmod(0o777)
    keys.ensure("svc")
    assert _mode(folder) == 0o700


def test_regenerating_a_key_replaces_that_one_only(state_home: Path) -> None:
    before = keys.ensure("svc")
    after = keys.regenerate("svc", "secondary")
    assert after.primary == before.primary
    assert after.secondary != before.secondary and len(after.secondary) == 43
    assert keys.regenerate("svc", "primary").primary not in (before.primary, after.primary)


def test_the_two_keys_are_never_equal_even_ignoring_case(
    state_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nginx's key map holds each key once: a secondary equal to the primary (an unlucky draw,
    here forced) is drawn again, on first use and on regeneration."""
    draws = iter(["SameKey", "samekey", "Other1", "SameKey", "Other2"])
    monkeypatch.setattr(keys.secrets, "token_urlsafe", lambda n: next(draws))
    k = keys.ensure("svc")
    assert (k.primary, k.secondary) == ("SameKey", "Other1")
    assert keys.regenerate("svc", "secondary").secondary == "Other2"


def test_no_keys_yet_says_how_to_make_them(state_home: Path) -> None:
    with pytest.raises(EnvironmentFailure, match=r"no keys for the deployment 'svc' .*`layerkit serve SPEC`"):
        keys.read("svc")
    with pytest.raises(EnvironmentFailure):
        keys.regenerate("svc", "primary")


def test_the_state_folder_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_STATE_HOME", "relative/path")  # invalid by the XDG spec: ignored
    assert keys.state_dir() == tmp_path / "home" / ".local" / "state" / "layerkit"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert keys.state_dir() == tmp_path / "home" / ".local" / "state" / "layerkit"


# --- the readiness wait ---------------------------------------------------------------------


class FakeClock:
    """Time moves only when the wait pauses: no wall clock in the test."""

    def __init__(self) -> None:
        self.now = 100.0
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def _wait(
    statuses: list[int | None], exits: list[int | None], timeout: float = 10.0
) -> tuple[readiness.Outcome, FakeClock]:
    clock = FakeClock()
    s, e = iter(statuses), iter(exits)
    outcome = readiness.wait(
        lambda: next(s), lambda: next(e), timeout=timeout, clock=clock, pause=clock.pause, interval=1.0
    )
    return outcome, clock


def test_ready_once_the_route_answers_200() -> None:
    outcome, clock = _wait([None, None, 502, 200], [None, None, None])
    assert outcome == readiness.Outcome("ready", last_status=200)
    assert clock.pauses == [1.0, 1.0, 1.0]


def test_a_container_that_exits_is_reported_with_its_code_not_waited_for() -> None:
    outcome, clock = _wait([None, 502], [None, 3])
    assert outcome == readiness.Outcome("exited", exit_code=3, last_status=502)
    assert clock.pauses == [1.0]


def test_the_wait_ends_at_the_deadline() -> None:
    outcome, clock = _wait([None] * 3 + [503] * 10, [None] * 13, timeout=5.0)
    assert outcome.state == "timeout" and outcome.last_status == 503
    assert clock.now == 105.0 and len(clock.pauses) == 5


def test_until_polls_a_condition_to_its_deadline() -> None:
    clock = FakeClock()
    answers = iter([False, False, True])
    assert readiness.until(lambda: next(answers), timeout=10, clock=clock, pause=clock.pause, interval=1.0)
    assert clock.pauses == [1.0, 1.0]
    clock = FakeClock()
    assert not readiness.until(lambda: False, timeout=3, clock=clock, pause=clock.pause, interval=1.0)
    assert clock.now == 103.0


# The end of azmlinfsrv 1.5.1's stdout and of the container's stderr when init() raises (seen
# in tests/test_serve_engine.py), shortened.
SERVER_STDOUT = """\
2026-11-28 15:49:06,719 I [1] azmlinfsrv - Loaded logging config

Azure ML Inferencing HTTP server v1.5.1
Server Settings
2026-11-28 15:49:08,784 E [15] azmlinfsrv - User's init function failed
2026-11-28 15:49:08,796 E [15] azmlinfsrv - Encountered Exception Traceback (most recent call last):
  File "/var/layerkit/source/score.py", line 2, in init
    raise RuntimeError('no model here')
RuntimeError: no model here

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
    raise UserScriptException(ex) from ex
azureml_inference_server_http.server.user_script.UserScriptException: Caught an unhandled exception from the user script

Azure ML Inferencing HTTP server v1.5.1
Server Settings
---------------
Score:          POST  127.0.0.1:31311/score
"""
SERVER_STDERR = """\
2026-11-28 15:49:09,257 E [1] gunicorn.error - Shutting down: Master
2026-11-28 15:49:09,258 E [1] gunicorn.error - Reason: Worker failed to boot.
"""


def test_the_error_of_init_is_the_users_not_the_servers_wrapper() -> None:
    assert readiness.raised(SERVER_STDOUT + SERVER_STDERR) == "RuntimeError: no model here"


def test_the_tail_shown_ends_with_the_traceback_and_stderr_not_the_settings_banner() -> None:
    tail = readiness.failure_tail(SERVER_STDOUT, SERVER_STDERR, 30).splitlines()
    assert (
        tail[-3:]
        == [
            "azureml_inference_server_http.server.user_script.UserScriptException: Caught an unhandled "
            "exception from the user script",
            *SERVER_STDERR.splitlines(),
        ][-3:]
    )
    assert "RuntimeError: no model here" in tail and "Score:          POST  127.0.0.1:31311/score" not in tail
    assert len(readiness.failure_tail(SERVER_STDOUT, SERVER_STDERR, 3).splitlines()) == 3 + 1


def test_what_init_raised_is_found_in_the_log() -> None:
    log = (
        'Starting gunicorn\nTraceback (most recent call last):\n  File "score.py", line 4, in init\n'
        "    raise RuntimeError('no model file')\nRuntimeError: no model file\nWorker exiting\n"
    )
    assert readiness.raised(log) == "RuntimeError: no model file"
    assert readiness.raised("azureml.exceptions.UserScriptException: init failed\n").startswith(
        "azureml.exceptions.UserScriptException: init failed"
    )
    assert readiness.raised("all good\n") is None
    assert (
        readiness.last_line("a\n[emerg] could not build map_hash\n\n") == "[emerg] could not build map_hash"
    )
    assert readiness.last_line("\n") is None


# --- the probe, against a real loopback server -----------------------------------------------


@pytest.fixture
def http_server() -> Iterator[tuple[int, list[str | None]]]:
    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(200 if self.path == "/ready" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_probe_sends_the_key_and_returns_the_status(http_server: tuple[int, list[str | None]]) -> None:
    port, seen = http_server
    assert readiness.http_status(port, "/ready", "k3y") == 200
    assert readiness.http_status(port, "/other", None) == 404
    assert seen == ["Bearer k3y", None]


def test_the_probe_says_none_while_nothing_listens() -> None:
    assert readiness.http_status(refused_port(), "/", "k") is None


# --- what the container is asked for ---------------------------------------------------------


def _deployment(tmp_path: Path, **kw: object) -> local.Deployment:
    fields: dict[str, object] = {
        "name": "svc", "image": "localhost:5000/x:1", "port": 5001, "host_port": 0,
        "readiness_route": "/", "scoring_route": "/score", "keys": tmp_path / "keys",
    }  # fmt: skip
    fields.update(kw)
    return local.Deployment(**fields)  # type: ignore[arg-type]


def test_the_container_is_labelled_published_on_loopback_and_mounts_the_keys_read_only(
    tmp_path: Path,
) -> None:
    c = local.container_spec(_deployment(tmp_path, host_port=8080))
    assert c.name == "layerkit-serve-svc" and c.labels == {local.LABEL: "svc"}
    assert c.port_bindings == {5001: ("127.0.0.1", 8080)}
    [keys_mount] = c.mounts
    assert keys_mount["Target"] == local.KEYS_DIR == "/var/run/layerkit/keys"
    assert keys_mount["Source"] == str(tmp_path / "keys") and keys_mount["ReadOnly"] is True
    assert c.environment == () and c.device_requests == ()
    assert c.network == local.NETWORK == "layerkit-serve"
    # Port 0: the engine picks a free one.
    assert local.container_spec(_deployment(tmp_path)).port_bindings == {5001: ("127.0.0.1", None)}


def test_source_is_mounted_read_only_and_named_to_the_server(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with pytest.raises(SpecError, match=r"no entry script score\.py in it"):
        local.container_spec(_deployment(tmp_path, source=src))
    (src / "score.py").write_text("def init(): pass\n")
    c = local.container_spec(_deployment(tmp_path, keys=None, source=src, gpu=1))
    [mount] = c.mounts
    assert (mount["Target"], mount["Source"], mount["ReadOnly"]) == (local.SOURCE_DIR, str(src), True)
    # The app root is the mount: the server puts it first on sys.path (aml_blueprint), so the
    # image's own /var/azureml-app must not be where helper modules are imported from.
    assert c.environment == (
        f"AML_APP_ROOT={local.SOURCE_DIR}",
        f"AZUREML_SOURCE_DIRECTORY={local.SOURCE_DIR}",
        f"AZUREML_ENTRY_SCRIPT={local.SOURCE_DIR}/score.py",
    )
    assert [r["Count"] for r in c.device_requests] == [1]
    assert c.working_dir == local.SOURCE_DIR
    assert local.container_spec(_deployment(tmp_path, keys=None)).working_dir is None
    with pytest.raises(SpecError, match="not a directory"):
        local.container_spec(_deployment(tmp_path, source=tmp_path / "missing"))


# --- the command line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["regen-key", "tertiary", "{spec}"], "regen-key needs primary or secondary"),
        (["regen-key"], "regen-key needs primary or secondary"),
        (["{spec}", "--stop", "--logs"], "--stop and --logs: give one"),
        (["keys", "{spec}", "--stop"], "--stop goes with `layerkit serve SPEC`, not `keys`"),
        (["keys", "{spec}", "--port", "8080"], "--port belongs to `layerkit serve SPEC`"),
        (["{spec}", "--logs", "--source", "."], "--source belongs to `layerkit serve SPEC`"),
        (["{spec}", "{spec}"], "give one SPEC"),
        (["{spec}", "--port", "70000"], "--port 70000: expected 0-65535"),
        (["{spec}", "--timeout", "0"], "--timeout must be above 0"),
    ],
)
def test_arguments_that_do_not_go_together_are_bad_input(
    cli, tmp_path: Path, argv: list[str], message: str
) -> None:
    spec = _spec(tmp_path)
    r = cli("serve", *[a.replace("{spec}", str(spec)) for a in argv])
    assert r.code == EXIT_BAD_INPUT, r.err
    assert message in r.err and r.err.count("\n") == 1 and r.out == ""


def test_a_spec_without_an_entry_script_has_nothing_to_serve(cli, tmp_path: Path) -> None:
    r = cli("serve", _spec(tmp_path, serve=""))
    assert r.code == EXIT_BAD_INPUT and "no serve.entry_script: nothing to serve" in r.err


def test_serve_keys_prints_the_keys_on_stdout_only(cli, tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    r = cli("serve", "keys", spec)
    assert r.code == EXIT_ENVIRONMENT and "no keys for the deployment 'churn-scorer'" in r.err
    k = keys.ensure("churn-scorer")
    r = cli("serve", "keys", spec)
    assert (r.code, r.out) == (0, f"primary: {k.primary}\nsecondary: {k.secondary}\n")
    assert k.primary not in r.err and k.secondary not in r.err
    r = cli("serve", "keys", spec, "--name", "other")
    assert r.code == EXIT_ENVIRONMENT and "'other'" in r.err


def test_regen_key_writes_the_key_then_needs_the_engine_to_reload(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such-docker.sock")
    monkeypatch.delenv("BUILDKIT_HOST", raising=False)
    before = keys.ensure("churn-scorer")
    r = cli("serve", "regen-key", "primary", _spec(tmp_path))
    assert r.code == EXIT_ENVIRONMENT and "no-such-docker.sock" in r.err
    after = keys.read("churn-scorer")
    assert after.primary != before.primary and after.secondary == before.secondary
    assert after.primary not in r.err + r.out and before.primary not in r.err + r.out


@pytest.mark.parametrize("flag", ["--stop", "--logs"])
def test_stop_and_logs_without_an_engine_say_where_they_looked(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such-docker.sock")
    monkeypatch.delenv("BUILDKIT_HOST", raising=False)
    r = cli("serve", _spec(tmp_path), flag)
    assert r.code == EXIT_ENVIRONMENT and "no-such-docker.sock" in r.err
    assert "--addr" in r.err and "\n" not in r.err.strip()


def test_serve_is_listed_and_its_help_names_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    from layerkit.cli import main

    for argv in (["--help"], ["serve", "--help"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 0
        help_ = capsys.readouterr().out
        assert "serve" in help_
    for word in ("--stop", "--logs", "serve keys SPEC", "regen-key primary|secondary SPEC", "--source DIR"):
        assert word in help_, word
