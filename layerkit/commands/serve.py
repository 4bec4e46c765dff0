"""`layerkit serve`: the spec's model as a web service on the local Docker engine (issue 16 §2),
as Azure recommends trying a deployment locally before a cluster.

  layerkit serve SPEC [--port P] [--source DIR]   build or reuse the inference image, run it
  layerkit serve SPEC --stop | --logs             stop and remove it; print its log
  layerkit serve keys SPEC                        print its two keys
  layerkit serve regen-key primary|secondary SPEC a new key, live without a rebuild

stdout: the scoring URL (or the keys, or the log); stderr: where the keys are, progress.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from layerkit.commands import SPEC_HELP, add_build_arguments, build_options, lock_of, out, warn
from layerkit.errors import DaemonError, SpecError

if TYPE_CHECKING:
    from layerkit.deploy.keys import KeyName
    from layerkit.deploy.local import LocalEngine
    from layerkit.spec.serve import ServeSettings
    from layerkit.spec.validate import Checked

USAGE = """\
layerkit serve SPEC [--port P] [--source DIR] [--name NAME] [--timeout S] [build options]
       layerkit serve SPEC --stop | --logs [--name NAME]
       layerkit serve keys SPEC [--name NAME]
       layerkit serve regen-key primary|secondary SPEC [--name NAME]"""
DEFAULT_TIMEOUT = 600.0  # init() may load a large model; Azure's readiness allows 5 minutes+


def configure(p: argparse.ArgumentParser) -> None:
    p.usage = USAGE
    p.add_argument("words", nargs="+", metavar="[keys|regen-key KEY] SPEC", help=SPEC_HELP)
    p.add_argument(
        "--port", type=int, metavar="P",
        help="port on 127.0.0.1 (default: serve.port, 5001; 0: any free port)",
    )  # fmt: skip
    p.add_argument(
        "--source", type=Path, metavar="DIR",
        help="serve the entry script from DIR (mounted read-only) instead of the image's copy: "
        "edit, serve again, no rebuild",
    )  # fmt: skip
    p.add_argument("--name", help="the deployment's name (default: the spec's name)")
    p.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
        help="seconds to wait for the readiness route (default: %(default)g)",
    )  # fmt: skip
    p.add_argument("--stop", action="store_true", help="stop and remove the deployment's container")
    p.add_argument("--logs", action="store_true", help="print the container's log (its stdout and stderr)")
    add_build_arguments(p, platform_default="the engine's, among the spec's platforms")


@dataclass(frozen=True)
class Action:
    verb: str  # serve, stop, logs, keys, regen-key
    spec: Path
    key: KeyName | None = None


def parse_words(args: argparse.Namespace) -> Action:
    """The words before the options, and the options that go with them."""
    words: list[str] = args.words
    if words[0] == "keys":
        verb, rest = "keys", words[1:]
    elif words[0] == "regen-key":
        if len(words) < 2 or words[1] not in ("primary", "secondary"):
            raise SpecError("regen-key needs primary or secondary: `layerkit serve regen-key primary SPEC`")
        verb, rest = "regen-key", words[2:]
    else:
        verb, rest = ("stop" if args.stop else "logs" if args.logs else "serve"), words
    if args.stop and args.logs:
        raise SpecError("--stop and --logs: give one")
    if verb in ("keys", "regen-key") and (args.stop or args.logs):
        raise SpecError(f"--{'stop' if args.stop else 'logs'} goes with `layerkit serve SPEC`, not `{verb}`")
    if verb != "serve":
        given = [f for f, v in (("--port", args.port), ("--source", args.source)) if v is not None]
        if given:
            raise SpecError(f"{given[0]} belongs to `layerkit serve SPEC` (starting the service)")
    if len(rest) != 1:
        raise SpecError(f"give one SPEC (usage: {USAGE.splitlines()[0]})")
    if args.port is not None and not 0 <= args.port <= 65535:
        raise SpecError(f"--port {args.port}: expected 0-65535")
    if args.timeout <= 0:
        raise SpecError("--timeout must be above 0")
    key: KeyName | None = None
    if verb == "regen-key":
        key = "primary" if words[1] == "primary" else "secondary"
    return Action(verb, Path(rest[0]), key)


def run(args: argparse.Namespace) -> int:
    from layerkit import api
    from layerkit.deploy import keys
    from layerkit.deploy.manifests import service_name
    from layerkit.spec.serve import settings

    action = parse_words(args)
    checked = api.check_spec(action.spec)
    warn(args, checked.warnings)
    serve = settings(checked.resolved.spec.serve)
    name = service_name(args.name, checked.resolved)
    if action.verb == "keys":
        k = keys.read(name)
        out(f"primary: {k.primary}\nsecondary: {k.secondary}\n")
        return 0
    if action.verb == "regen-key":
        assert action.key is not None
        return _regen(args, name, action.key, serve)
    if action.verb == "serve" and not serve.entry_script:
        raise SpecError(f"{action.spec}: no serve.entry_script: nothing to serve (see README, Deploying)")
    if action.verb == "serve" and args.platform is None:
        # Before the engine is opened for the service: a spec not built for it is refused first.
        args.platform = api.run_platform(action.spec, args.addr)
    engine = _engine(args)
    try:
        if action.verb == "stop":
            n = engine.remove(name)
            try:
                engine.drop_network()
            except DaemonError as exc:  # the deployment is stopped: the network is tidying only
                from layerkit.deploy.local import NETWORK

                warn(args, [f"layerkit: warning: {exc.message}; `docker network rm {NETWORK}` removes it"])
            _say(
                args,
                f"layerkit: stopped '{name}'" if n else f"layerkit: no local deployment '{name}' to stop",
            )
            return 0
        if action.verb == "logs":
            engine.write_logs(name, sys.stdout.buffer, sys.stderr.buffer)
            return 0
        return _serve(args, action.spec, checked, serve, name, engine)
    finally:
        engine.close()


def _serve(
    args: argparse.Namespace, spec: Path, checked: Checked, s: ServeSettings, name: str, engine: LocalEngine
) -> int:
    from layerkit import api
    from layerkit.deploy import keys
    from layerkit.deploy.local import Deployment

    lock, auto = lock_of(args)
    result = api.build_inference(
        spec, lock, args.platform, auto, options=build_options(args), on_warning=lambda w: warn(args, (w,))
    )
    k = keys.ensure(name) if s.auth == "key" else None
    d = Deployment(
        name=name,
        image=result.image,
        port=s.port,
        host_port=s.port if args.port is None else args.port,
        readiness_route=s.readiness_route,
        scoring_route=s.scoring_route,
        keys=k.folder if k else None,
        probe_key=k.primary if k else None,
        source=args.source,
        entry_script=s.entry_script or "",
        gpu=s.gpu,
    )
    _say(args, f"layerkit: starting {result.image} as '{name}'; waiting for {s.readiness_route}")
    running = engine.start(d, args.timeout)
    out(running.scoring_url + "\n")
    if k is not None:
        _say(args, f"layerkit: keys in {k.folder} (`layerkit serve keys {spec}` prints them; send "
                   "`Authorization: Bearer KEY`)")  # fmt: skip
    _say(args, f"layerkit: serving '{name}'; `layerkit serve --stop {spec}` stops it")
    return 0


def _regen(args: argparse.Namespace, name: str, which: KeyName, s: ServeSettings) -> int:
    from layerkit.deploy import keys, readiness

    old = keys.read(name).get(which)
    new = keys.regenerate(name, which)
    route = s.scoring_route

    def took_effect(port: int) -> bool:
        # nginx takes the new key and refuses the old one: its reload is complete.
        status = readiness.http_status(port, route, new.get(which))
        return status not in (None, 401) and readiness.http_status(port, route, old) == 401

    engine = _engine(args)
    try:
        live = engine.reload(name, took_effect)
    finally:
        engine.close()
    when = "the running service uses it now" if live else "no service runs: the next `serve` uses it"
    _say(args, f"layerkit: new {which} key in {new.folder / which}; {when}; the old one no longer works")
    return 0


def _engine(args: argparse.Namespace) -> LocalEngine:
    """The engine `build` uses (--addr docker://HOST), else $DOCKER_HOST."""
    from layerkit.build.transport import parse_address
    from layerkit.deploy.local import LocalEngine

    return LocalEngine(parse_address(args.addr).engine_host)


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)
