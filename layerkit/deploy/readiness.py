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


def raised(log: str) -> str | None:
    """The last `SomeError: message` line of a log: what init() raised, for a one-line error."""
    lines = [line.strip() for line in log.splitlines()]
    found = [line for line in lines if _RAISED.match(line)]
    return found[-1] if found else None


def last_line(log: str) -> str | None:
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    return lines[-1] if lines else None
