"""Waiting for a started server: poll its readiness route until it answers 200, the container
exits, or a deadline passes. Pure but for `http_status`; `wait` takes its clock and pause as
arguments so tests drive it with fakes, not the wall clock."""

from __future__ import annotations

import http.client
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

POLL_INTERVAL = 0.25  # seconds between polls: init() takes seconds to minutes, a poll ~1 ms


@dataclass(frozen=True)
class Outcome:
    state: Literal["ready", "exited", "timeout"]
    exit_code: int | None = None  # the container's, when it exited
    last_status: int | None = None  # the last HTTP status seen, when there was one


def wait(
    status: Callable[[], int | None],
    exited: Callable[[], int | None],
    *,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
    interval: float = POLL_INTERVAL,
) -> Outcome:
    """``status()``: the route's HTTP status, None while nothing answers. ``exited()``: the
    container's exit code once it has stopped, else None. The exit is checked after each poll
    that is not a 200: a server that died is reported so, though its proxy may still answer
    (nginx: 502)."""
    deadline = clock() + timeout
    last: int | None = None
    while True:
        code = status()
        last = code if code is not None else last
        if code == 200:
            return Outcome("ready", last_status=code)
        gone = exited()
        if gone is not None:
            return Outcome("exited", exit_code=gone, last_status=last)
        if clock() >= deadline:
            return Outcome("timeout", last_status=last)
        pause(interval)


def until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
    interval: float = POLL_INTERVAL,
) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` passes (False)."""
    deadline = clock() + timeout
    while not condition():
        if clock() >= deadline:
            return False
        pause(interval)
    return True


def http_status(port: int, route: str, key: str | None, timeout: float = 2.0) -> int | None:
    """GET http://127.0.0.1:PORT/ROUTE (with the key, so a route behind auth works too): the
    status, or None when nothing answers yet. http.client, not urllib: no proxy from the
    environment may see the key or the loopback request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", route, headers={"Authorization": f"Bearer {key}"} if key else {})
        resp = conn.getresponse()
        resp.read()
        return int(resp.status)
    except (OSError, http.client.HTTPException):
        return None  # refused, reset while the server starts, or timed out
    finally:
        conn.close()


_RAISED = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt)\b(?::.*)?$")
# azmlinfsrv wraps what init() raised in its own exception, chained after the user's: skip it.
SERVER_PACKAGE = "azureml_inference_server_http."
# azmlinfsrv prints its settings again as it exits: noise after the error, left out of the tail.
BANNER = "Azure ML Inferencing HTTP server v"


def raised(log: str) -> str | None:
    """The last `SomeError: message` line of a log that is not the server's own wrapper: what
    init() raised, for a one-line error."""
    lines = [line.strip() for line in log.splitlines()]
    found = [line for line in lines if _RAISED.match(line) and not line.startswith(SERVER_PACKAGE)]
    return found[-1] if found else None


def last_line(log: str) -> str | None:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return lines[-1] if lines else None


def failure_tail(stdout: str, stderr: str, lines: int) -> str:
    """What to show of a server that stopped: the end of its own log (stdout, without the
    settings banner it prints on the way out), then the end of stderr (gunicorn, nginx)."""
    out = stdout.splitlines()
    starts = [i for i, line in enumerate(out) if line.startswith(BANNER)]
    if starts and starts[-1] > 0:
        out = out[: starts[-1]]
    while out and not out[-1].strip():
        out.pop()
    err = stderr.splitlines()
    keep = [*out[-lines:], *err[-max(lines // 3, 1) :]]
    return "".join(line + "\n" for line in keep)
