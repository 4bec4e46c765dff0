"""Show BuildKit's Status stream: ``plain`` lines, ``json`` events, or a live ``rich`` view.

Everything goes to stderr: stdout carries the build result only. ``auto`` is rich on a
terminal and plain otherwise (CI logs, make). Every mode also counts steps, so the
build result can report how many were CACHED.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TextIO

if TYPE_CHECKING:
    from rich.table import Table

    from layerkit.build._proto import buildkit_control_pb2 as control

Mode = Literal["auto", "plain", "json", "quiet"]


def _seconds(ts: object) -> float:
    return ts.seconds + ts.nanos / 1e9  # type: ignore[attr-defined, no-any-return]


@dataclass
class Step:
    digest: str
    name: str
    phase: str = ""
    cached: bool = False
    started: float | None = None
    completed: float | None = None
    error: str = ""

    @property
    def duration(self) -> float | None:
        if self.started is None or self.completed is None:
            return None
        return max(0.0, self.completed - self.started)

    @property
    def state(self) -> str:
        if self.error:
            return "ERROR"
        if self.cached:
            return "CACHED"
        return "DONE" if self.completed is not None else "RUNNING"


def _short(name: str, width: int = 110) -> str:
    # Multi-line RUN commands arrive with their continuations collapsed into spaces.
    name = " ".join(name.split())
    return name if len(name) <= width else name[: width - 3] + "..."


# The solve that repeats one already shown, to export it (builder: the image pushed last).
PUBLISH = "publish"
REPLAYS = frozenset({PUBLISH})


def is_build_step(name: str) -> bool:
    """Dockerfile instructions that do work (``[env 3/7] RUN ...``): not ``[internal] ...``
    bookkeeping, and not FROM, which resolves an image and is never reported CACHED."""
    if not name.startswith("[") or name.startswith(("[internal]", "[auth]")) or "] " not in name:
        return False
    return not name.split("] ", 1)[1].startswith("FROM ")


def step_of(name: str) -> str:
    """The Dockerfile step a build-step vertex belongs to (``[env 3/7]``): `COPY --link` is two
    vertexes (the copy, then ``LINK COPY …`` laying it over the layers below) and one step."""
    return name.split("] ", 1)[0] + "]"


class Progress:
    """Callback for ``BuildkitClient.solve(on_status=...)``; one per build, across solves."""

    def __init__(self, mode: Mode = "auto", stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "plain" if not self.stream.isatty() else "auto"
        self.mode = mode
        self.steps: dict[str, Step] = {}
        self._reported: set[tuple[str, str, str]] = set()
        self._label = ""
        self._live: object | None = None
        self._t0 = time.monotonic()

    # -- lifecycle -------------------------------------------------------------------------
    def phase(self, label: str) -> None:
        """A new solve (e.g. ``base``, ``env``, ``image``) or a decision worth a line."""
        self._label = label
        self.message(f"=> {label}")

    def message(self, text: str) -> None:
        if self.mode == "json":
            self._json({"event": "message", "text": text})
        elif self.mode != "quiet":
            self._print(text)

    def close(self) -> None:
        live = self._live
        if live is not None:
            live.stop()  # type: ignore[attr-defined]
            self._live = None

    # -- status stream ---------------------------------------------------------------------
    def __call__(self, resp: control.StatusResponse) -> None:
        for v in resp.vertexes:
            # Keyed per phase: a later solve of the same stage reports its steps CACHED,
            # which must not rewrite what the first solve did.
            key = f"{self._label}/{v.digest}"
            step = self.steps.get(key)
            if step is None:
                step = self.steps[key] = Step(v.digest, v.name, phase=self._label)
            step.cached = step.cached or v.cached
            if v.HasField("started"):
                step.started = _seconds(v.started)
            if v.HasField("completed"):
                step.completed = _seconds(v.completed)
            step.error = v.error or step.error
            self._emit(step)
        if self.mode == "json":
            for log in resp.logs:
                self._json(
                    {
                        "event": "log",
                        "step": log.vertex,
                        "stream": log.stream,
                        "text": log.msg.decode("utf-8", "replace"),
                    }
                )
        if self._live is not None:
            self._live.update(self._table())  # type: ignore[attr-defined]

    def _emit(self, step: Step) -> None:
        state = step.state
        if (step.phase, step.digest, state) in self._reported:
            return
        self._reported.add((step.phase, step.digest, state))
        if self.mode == "json":
            self._json(
                {
                    "event": "step",
                    "phase": self._label,
                    "step": step.digest,
                    "name": step.name,
                    "state": state,
                    "duration": step.duration,
                }
            )
        elif self.mode == "plain":
            if state == "RUNNING" or (step.cached and step.phase in REPLAYS):
                return  # one line per step: when it ends; a replayed solve's cached steps say nothing new
            took = f" {step.duration:.1f}s" if step.duration is not None and not step.cached else ""
            self._print(f"#{self._label:<5} {state:<6} {_short(step.name)}{took}")
        elif self.mode == "auto" and self._live is None:
            self._start_live()

    def _start_live(self) -> None:
        from rich.console import Console
        from rich.live import Live

        live = Live(self._table(), console=Console(file=self.stream), refresh_per_second=8, transient=False)
        live.start()
        self._live = live

    def _table(self) -> Table:
        from rich.table import Table

        table = Table.grid(padding=(0, 1))
        styles = {"CACHED": "cyan", "DONE": "green", "RUNNING": "yellow", "ERROR": "bold red"}
        now = time.time()
        shown = [s for s in self.steps.values() if not (s.cached and s.phase in REPLAYS)]
        for step in shown[-25:]:
            took = step.duration
            if took is None and step.started is not None:
                took = max(0.0, now - step.started)
            table.add_row(
                f"[{styles[step.state]}]{step.state:<7}[/]",
                _short(step.name, 90),
                "" if took is None or step.cached else f"{took:.1f}s",
            )
        return table

    # -- counts for the result -------------------------------------------------------------
    def counts(self, phase: str) -> tuple[int, int]:
        """(cached, total) over the Dockerfile steps of one solve; a step is cached when all
        of its vertexes are."""
        cached: dict[str, bool] = {}
        for s in self.steps.values():
            if s.phase == phase and is_build_step(s.name):
                cached[step_of(s.name)] = cached.get(step_of(s.name), True) and s.cached
        return sum(cached.values()), len(cached)

    def _print(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text, markup=False, highlight=False)  # type: ignore[attr-defined]
        else:
            print(text, file=self.stream, flush=True)

    def _json(self, event: dict[str, object]) -> None:
        event["t"] = round(time.monotonic() - self._t0, 3)
        print(json.dumps(event, sort_keys=True), file=self.stream, flush=True)
