"""`make demo`: lock, render and hash the embedded example against a local conda channel
served on 127.0.0.1 (the air-gapped setup: a channel mirror and the embedded solver)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import fixtures_channels as fx  # noqa: E402


def run(*args: str) -> str:
    print(f"$ layerkit {' '.join(args)}", file=sys.stderr, flush=True)
    proc = subprocess.run([sys.executable, "-m", "layerkit", *args], capture_output=True, text=True)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        sys.exit(proc.returncode)
    return proc.stdout


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="layerkit-demo-"))
    channel = fx.make_channel(work / "channel", fx.default_packages())
    url, stop = fx.serve_channel(channel)
    try:
        spec_dir = work / "spec"
        shutil.copytree(ROOT / "examples" / "demo", spec_dir)
        team = spec_dir / "team.yaml"
        team.write_text(team.read_text() + f"mirrors:\n  channels: {{demo: '{url}'}}\n")
        spec = spec_dir / "layerkit.yaml"
        run("validate", str(spec))
        sys.stdout.write(run("show", str(spec)))
        unlocked = run("hash", "--no-lock", str(spec)).strip()
        run("lock", str(spec))
        run("lock", "--check", str(spec))
        out = work / "context"
        run("render", str(spec), "-o", str(out))
        locked = run("hash", str(spec)).strip()
        print((out / "Dockerfile").read_text())
        print(f"context: {sorted(p.name for p in out.iterdir())}")
        print(f"hash before locking: {unlocked}")
        print(f"hash of the locked environment: {locked}")
    finally:
        stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
