"""`make demo` (scripts/demo.py): it runs end to end on the default engine (Docker 26), serving
and scoring the example model at the end, and its environment hash does not depend on the
random ports of the services it starts, so two runs show the same hash."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import fixtures_build as fb
import pytest
from fixtures_services import require_root

from layerkit import api

ROOT = Path(__file__).resolve().parent.parent


def demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_script", ROOT / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render(tmp: Path, port: int) -> tuple[str, str]:
    """The demo's spec as a run with its registry (and channel, PyPI mirror) on `port` makes it."""
    spec_dir = tmp / str(port)
    shutil.copytree(ROOT / "examples" / "demo", spec_dir)
    site = fb.Site(f"http://127.0.0.1:{port + 1}", f"http://127.0.0.1:{port + 2}/simple")
    registry = f"localhost:{port}"
    (spec_dir / "site.yaml").write_text(demo().site_yaml(site, registry))
    spec = spec_dir / "layerkit.yaml"
    return api.hash_spec(spec, auto_lock=False).hash, api.render(spec, auto_lock=False).dockerfile


def test_the_demo_hash_does_not_name_the_random_registry_port(tmp_path: Path) -> None:
    (h1, d1), (h2, d2) = render(tmp_path, 41001), render(tmp_path, 52002)
    assert h1 == h2
    # The pulls still go to this run's registry.
    for port, dockerfile in ((41001, d1), (52002, d2)):
        # The image of each FROM, past its flags (the env stage's --platform=$BUILDPLATFORM).
        froms = [
            next(w for w in line.split()[1:] if not w.startswith("--"))
            for line in dockerfile.splitlines()
            if line.startswith("FROM ")
        ]
        assert froms == [f"localhost:{port}/library/debian:bookworm"] * 2 + ["base"]  # base, env, runtime


@pytest.mark.integration
def test_the_demo_builds_pushes_finds_and_runs_on_docker_26(tmp_path: Path) -> None:
    """What `make demo` runs after installing (scripts/demo.sh), with its own registry storage
    (the default one, kept between runs, may be another run's)."""
    require_root()
    env = {k: v for k, v in os.environ.items() if k != "DOCKERD_ENGINE"}  # the default engine
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), "--registry-dir", str(tmp_path / "registry")],
        capture_output=True, text=True, env=env, timeout=1800, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]

    def summary(name: str) -> str:
        found = [
            line.split(":", 1)[1].strip() for line in proc.stdout.splitlines() if line.startswith(f"{name}:")
        ]
        assert len(found) == 1, proc.stdout[-3000:]
        return found[0]

    assert summary("engine").startswith("Docker 26.") and "containerd image store" in summary("engine")
    assert summary("first build").startswith("built in ")
    assert summary("second build").startswith("found in ")
    assert summary("image").startswith("localhost:") and summary("image").endswith(
        ":" + summary("environment hash")
    )
    # mlkit, a program of the locked environment, ran in the image: fib(40).
    assert ": fib(40) = 102334155" in proc.stdout
    # The example model was served (examples/demo/serve/) and scored with the primary key:
    # 0.5*1 - 1.25*2 + 2.0*3 + 0.1, computed by score.py from the model file.
    url, _, answer = summary("served").partition(" -> ")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/score")
    assert json.loads(answer) == {"predictions": [4.1]}
