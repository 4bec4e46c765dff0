"""`layerkit deploy`: the spec's `serve:` section on Kubernetes (issue 16 §3, §4).

  layerkit deploy SPEC -o DIR --image REF [--autoscaler knative|hpa]   kustomize-ready manifests
  layerkit deploy plan SPEC --rps R --request-seconds S [--json]        replicas needed
  layerkit deploy keys SPEC [--keep FILE [--rotate K]]                  a keys Secret, on stdout

One command with two words before SPEC rather than three commands: the three read the same
section, and `deploy keys` belongs beside the manifests that reference its Secret.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from layerkit.commands import SPEC_HELP, out, warn
from layerkit.errors import SpecError

if TYPE_CHECKING:
    from layerkit.spec.serve import ServeSettings
    from layerkit.spec.validate import Checked

USAGE = """\
layerkit deploy SPEC -o DIR --image REF [--autoscaler {knative,hpa}] [--name NAME]
       layerkit deploy plan SPEC --rps R --request-seconds S [--json]
       layerkit deploy keys SPEC [--name NAME] [--keep FILE [--rotate primary|secondary]]"""
_ACTIONS = ("plan", "keys")


def configure(p: argparse.ArgumentParser) -> None:
    p.usage = USAGE
    p.add_argument("words", nargs="+", metavar="[plan|keys] SPEC", help=SPEC_HELP)
    p.add_argument("-o", "--output", type=Path, metavar="DIR", help="manifests: the directory to write")
    p.add_argument("--image", metavar="REF", help="manifests: the inference image to run")
    p.add_argument(
        "--autoscaler",
        choices=("knative", "hpa"),
        default="knative",
        help="manifests: knative (default; scales on busy replicas, as Azure) or hpa (CPU; no Knative)",
    )
    p.add_argument("--name", help="manifests, keys: the service's name (default: the spec's name)")
    p.add_argument("--keep", type=Path, metavar="FILE",
                   help="keys: keep the keys of this Secret file (an earlier `deploy keys`); default: both new")  # fmt: skip
    p.add_argument("--rotate", choices=("primary", "secondary"), help="keys: with --keep, make this key new")
    p.add_argument("--rps", type=float, metavar="R", help="plan: requests per second to serve")
    p.add_argument("--request-seconds", type=float, metavar="S", help="plan: seconds one request takes")
    p.add_argument("--json", action="store_true", help="plan: a JSON document on stdout")


def _spec(words: list[str]) -> tuple[str, Path]:
    action = words[0] if words[0] in _ACTIONS else "manifests"
    rest = words[1:] if action != "manifests" else words
    if len(rest) != 1:
        raise SpecError(
            f"give one SPEC (usage: {USAGE.splitlines()[0 if action == 'manifests' else 1].strip()})"
        )
    return action, Path(rest[0])


def _refuse_options(args: argparse.Namespace, action: str) -> None:
    """An option of another action is a mistake worth saying, not ignoring."""
    owners = {"output": "manifests", "image": "manifests", "rps": "plan", "request_seconds": "plan",
              "json": "plan", "keep": "keys", "rotate": "keys"}  # fmt: skip
    for dest, owner in owners.items():
        if owner != action and getattr(args, dest) not in (None, False):
            flag = "-o" if dest == "output" else "--" + dest.replace("_", "-")
            where = "`layerkit deploy SPEC`" if owner == "manifests" else f"`layerkit deploy {owner}`"
            raise SpecError(f"{flag} belongs to {where}")
    if action != "manifests" and args.autoscaler != "knative":
        raise SpecError("--autoscaler belongs to `layerkit deploy SPEC`")
    if action == "plan" and args.name is not None:
        raise SpecError("--name belongs to `layerkit deploy SPEC` and `layerkit deploy keys`")


def run(args: argparse.Namespace) -> int:
    from layerkit import api
    from layerkit.spec.serve import settings

    action, spec = _spec(args.words)
    _refuse_options(args, action)
    checked = api.check_spec(spec)
    warn(args, checked.warnings)
    serve = settings(checked.resolved.spec.serve)
    if action == "plan":
        return _plan(args, checked, serve)
    from layerkit.deploy import manifests

    name = manifests.service_name(args.name, checked.resolved)
    if action == "keys":
        keep = manifests.read_keys(args.keep) if args.keep is not None else None
        out(manifests.keys_secret(name, serve, keep, args.rotate))
        new = "new keys" if keep is None else (f"a new {args.rotate} key" if args.rotate else "the kept keys")
        warn(args, [f"layerkit: the Secret '{name}-keys' holds {new}; apply it with `kubectl apply -f -` "
                    "and keep it out of git (and out of serve.source_directory)"])  # fmt: skip
        return 0
    if args.output is None or args.image is None:
        raise SpecError("writing manifests needs -o DIR and --image REF")
    written = manifests.write(
        args.output, manifests.Request(name, args.image, args.autoscaler), checked.resolved
    )
    warn(args, written.warnings)
    for path in written.files:
        print(path, file=sys.stderr)
    return 0


def _plan(args: argparse.Namespace, checked: Checked, serve: ServeSettings) -> int:
    from layerkit.deploy.capacity import plan

    if args.rps is None or args.request_seconds is None:
        raise SpecError("deploy plan needs --rps R and --request-seconds S")
    if args.rps <= 0 or args.request_seconds <= 0:
        raise SpecError("--rps and --request-seconds must be above 0")
    c = plan(serve, args.rps, args.request_seconds)
    if not c.enough:
        r = checked.resolved
        key = "autoscale_max_replicas" if c.autoscale_enabled else "num_replicas"
        warn(args, [f"{r.loc(('serve', key))}: warning: {c.replicas} replicas needed, above {key} "
                    f"{c.available}: requests will queue; raise {key}"])  # fmt: skip
    if args.json:
        doc = {"replicas": c.replicas, "rps": c.rps, "request_seconds": c.request_seconds,
               "target_utilization": c.target_utilization,
               "max_concurrent_requests_per_replica": c.max_concurrent_requests_per_replica,
               "autoscale_enabled": c.autoscale_enabled, "available_replicas": c.available,
               "enough": c.enough}  # fmt: skip
        out(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        out(f"{c.replicas}\n")
    return 0
