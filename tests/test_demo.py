"""`make demo` (scripts/demo.py): its environment hash does not depend on the random ports of
the services it starts, so two runs show the same hash."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import fixtures_build as fb

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
        froms = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM ")]
        assert froms == [f"localhost:{port}/library/debian:bookworm"] * 2 + ["base"]  # base, env, runtime
