"""Manual smoke check of the BuildKit client: ``python -m layerkit.build [--addr A] [--base IMG]``.

Prints the daemon's workers and capabilities; with --base it also builds a
two-line Dockerfile (no session: Dockerfile passed as an LLB frontend input),
streaming vertex progress, and exports it to dockerd as --tag.
"""

from __future__ import annotations

import argparse
import sys
import time

from layerkit.build._proto import buildkit_control_pb2 as control
from layerkit.build.client import BuildkitClient
from layerkit.build.llb import dockerfile_inputs
from layerkit.build.tls import TLSConfig
from layerkit.errors import LayerkitError


def _print_progress(resp: control.StatusResponse) -> None:
    for v in resp.vertexes:
        if v.HasField("completed"):
            flag = "CACHED" if v.cached else "ERROR " if v.error else "done  "
            print(f"  {flag} {v.name}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m layerkit.build", description=__doc__)
    ap.add_argument("--addr", help="unix://, tcp:// or docker:// (default: BUILDKIT_HOST, else DOCKER_HOST)")
    ap.add_argument("--base", help="base image for the test build, e.g. localhost:5000/debian:bookworm")
    ap.add_argument("--tag", default="localhost/layerkit-smoke:latest")
    args = ap.parse_args(argv)
    try:
        with BuildkitClient(args.addr, tls=TLSConfig.from_options()) as client:
            print(f"connected to {client.transport.address}")
            for w in client.list_workers():
                print(
                    f"worker {w.id}: {', '.join(w.platforms)} executor={w.executor} snapshotter={w.snapshotter}"
                )
            caps = client.capabilities()
            print(caps)
            if not args.base:
                return 0
            started = time.monotonic()
            result = client.solve(
                frontend="dockerfile.v0",
                frontend_attrs={"force-network-mode": "none"},
                frontend_inputs=dockerfile_inputs(f"FROM {args.base}\nRUN echo hi > /x\n"),
                exporter=caps.default_exporter,
                exporter_attrs={"name": args.tag},
                on_status=_print_progress,
            )
            print(f"solved in {time.monotonic() - started:.2f}s: {result.exporter_response}")
    except LayerkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
