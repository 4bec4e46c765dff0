"""layerkit/_generated/ (layerkit/precompiled.py): the shipped compiled template and parsed
catalog are current, used only for exactly the sources they were made from, and give what
compiling and parsing give."""

from __future__ import annotations

from pathlib import Path

import pytest

from layerkit import precompiled
from layerkit.render.jinja import _env
from layerkit.resources import data_dir
from layerkit.spec.catalog import _load_yaml

STALE = "layerkit/_generated/ is stale: run `make precompile` and commit the result"


def _source() -> str:
    return (data_dir("templates") / precompiled.TEMPLATE).read_text(encoding="utf-8")


def test_the_shipped_files_are_what_make_precompile_writes() -> None:
    gen = precompiled.GENERATED
    module = (gen / f"{precompiled.TEMPLATE_MODULE}.py").read_text(encoding="utf-8")
    assert module == precompiled.template_code(_env(), _source()), STALE
    files = precompiled.catalog_files(data_dir("base-images"))
    parsed = {name: _load_yaml(data.decode("utf-8"), name) for name, data in files}
    assert (gen / precompiled.CATALOG_JSON).read_text(encoding="utf-8") == precompiled.catalog_snapshot(
        files, parsed
    ), STALE


def test_the_compiled_template_serves_only_its_own_source() -> None:
    env = _env()
    source = _source()
    shipped = precompiled.compiled_template(env, source)
    assert shipped is not None
    assert precompiled.compiled_template(env, source + "# edited\n") is None


def test_render_uses_the_shipped_template_and_prints_what_compiling_prints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from layerkit import api
    from layerkit.render import jinja

    assert jinja.template().filename is not None
    assert jinja.template().filename.endswith(f"{precompiled.TEMPLATE_MODULE}.py")
    specs = sorted((Path(__file__).parent / "specs").glob("*.yaml"))
    shipped = [api.render(spec, auto_lock=False).dockerfile for spec in specs]
    fresh = _env().from_string(_source())
    monkeypatch.setattr(jinja, "template", lambda: fresh)
    assert [api.render(spec, auto_lock=False).dockerfile for spec in specs] == shipped


def test_the_parsed_catalog_serves_only_its_own_bytes() -> None:
    files = precompiled.catalog_files(data_dir("base-images"))
    parsed = precompiled.parsed_catalog(files)
    assert parsed == {name: _load_yaml(data.decode("utf-8"), name) for name, data in files}
    name, data = files[0]
    edited = [(name, data + b"\n# edited\n"), *files[1:]]
    assert precompiled.parsed_catalog(edited) is None
    assert precompiled.parsed_catalog(files[1:]) is None  # a file removed
    assert precompiled.parsed_catalog([*files, ("images/new.yaml", b"id: new\n")]) is None
