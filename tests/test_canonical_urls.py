"""The site's mirrors leave no trace in the image: the mirror table (spec/mirrortable.py), the
render that ships it only with mirrors, and templates/canonical_urls.py, which maps what the
installers recorded back to canonical URLs."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from layerkit import api
from layerkit.resources import data_dir
from layerkit.spec.mirrortable import PYPI_INDEX, unmirror, url_table
from layerkit.spec.models import Mirrors

MIRROR = "http://127.0.0.1:8000"
TABLE = (("http://127.0.0.1:8000/cf", "https://conda.anaconda.org/conda-forge"),)


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "canonical_urls", data_dir("templates") / "canonical_urls.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_maps_each_mirror_to_its_canonical_prefix_longest_first() -> None:
    table = url_table(
        Mirrors(channels={"demo": f"{MIRROR}/demo/"}, channel_alias=MIRROR, pypi_index=f"{MIRROR}/simple")
    )
    assert set(table) == {
        (f"{MIRROR}/demo", "https://conda.anaconda.org/demo"),
        (MIRROR, "https://conda.anaconda.org"),
        (f"{MIRROR}/simple", PYPI_INDEX),
    }
    assert [len(m) for m, _ in table] == sorted((len(m) for m, _ in table), reverse=True)
    assert (
        unmirror(f"{MIRROR}/demo/linux-64/a-1-0.conda", table)
        == "https://conda.anaconda.org/demo/linux-64/a-1-0.conda"
    )
    assert unmirror(f"{MIRROR}0/demo/x", table) == f"{MIRROR}0/demo/x"  # a longer host is not the mirror
    assert url_table(None) == ()


def test_a_record_gets_canonical_url_and_channel_and_nothing_else_changes() -> None:
    record = (
        '{\n  "name": "numpy",\n  "fn": "numpy-2.0-0.conda",\n'
        f'  "url": "{MIRROR}/cf/linux-64/numpy-2.0-0.conda",\n  "channel": "{MIRROR}/cf/",\n'
        f'  "note": "{MIRROR}/cfx/other",\n  "link": {{"source": "/var/cache/x"}}\n}}\n'
    )
    out = _script().canonical_records(record, TABLE)
    assert out == record.replace(f'"{MIRROR}/cf/', '"https://conda.anaconda.org/conda-forge/')
    assert json.loads(out)["url"] == "https://conda.anaconda.org/conda-forge/linux-64/numpy-2.0-0.conda"
    assert json.loads(out)["note"] == f"{MIRROR}/cfx/other"


def _dist(site: Path, name: str, sha: str) -> Path:
    dist = site / f"{name}-1.0.dist-info"
    dist.mkdir(parents=True)
    direct = json.dumps({"url": f"{MIRROR}/files/{name}.whl", "archive_info": {"hashes": {"sha256": sha}}})
    (dist / "direct_url.json").write_text(direct)
    (dist / "RECORD").write_text(
        f"{name}/__init__.py,sha256=x,1\n{dist.name}/direct_url.json,sha256=y,2\n{dist.name}/RECORD,,\n"
    )
    return dist


def test_the_locked_wheels_direct_url_records_go_and_a_users_url_stays(tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    site = prefix / "lib" / "python3.11" / "site-packages"
    locked_sha, own_sha = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()
    locked, own = _dist(site, "locked", locked_sha), _dist(site, "own", own_sha)
    meta = prefix / "conda-meta"
    meta.mkdir()
    (meta / "a.json").write_text(f'{{"url": "{MIRROR}/cf/linux-64/a.conda"}}')
    (tmp_path / "table.json").write_text(json.dumps({"prefixes": [list(p) for p in TABLE]}))
    req = tmp_path / "requirements-linux-64.txt"
    req.write_text(f"locked @ {MIRROR}/files/locked.whl --hash=sha256:{locked_sha}\n")

    _script().canonical_urls(str(prefix), str(tmp_path / "table.json"), str(req))

    assert not (locked / "direct_url.json").exists()
    assert (locked / "RECORD").read_text() == "locked/__init__.py,sha256=x,1\nlocked-1.0.dist-info/RECORD,,\n"
    assert (own / "direct_url.json").exists() and "direct_url.json" in (own / "RECORD").read_text()
    assert (
        meta / "a.json"
    ).read_text() == '{"url": "https://conda.anaconda.org/conda-forge/linux-64/a.conda"}'


SPEC = "name: m\nversion: '1'\nconda:\n  channels: [demo]\n  dependencies: [python=3.11]\n"


@pytest.mark.parametrize("installer", ["rattler", "micromamba"])
def test_only_a_rattler_render_with_mirrors_ships_the_table_and_the_hash_ignores_it(
    tmp_path: Path, installer: str
) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text(SPEC + f"  installer: {installer}\n")
    mirrored = tmp_path / "mirrored.yaml"
    mirrored.write_text(plain.read_text() + f"mirrors:\n  channels: {{demo: '{MIRROR}/demo'}}\n")
    files = {p: dict(api.render(p).plan.context_files) for p in (plain, mirrored)}
    assert "canonical-urls.json" not in files[plain] and "canonical_urls.py" not in files[plain]
    shipped = installer == "rattler"
    assert ("canonical-urls.json" in files[mirrored]) is shipped
    if shipped:
        table = json.loads(files[mirrored]["canonical-urls.json"])
        assert table == {"prefixes": [[f"{MIRROR}/demo", "https://conda.anaconda.org/demo"]]}
        assert (
            "canonical_urls.py --prefix /opt/env --table canonical-urls.json"
            in api.render(mirrored).dockerfile
        )
    assert api.hash_spec(plain).hash == api.hash_spec(mirrored).hash


def test_a_locked_native_pip_step_drops_direct_url_without_mirrors_too() -> None:
    """pip records a `name @ URL` wheel's URL in direct_url.json: dropped by every render with a
    locked native pip section, mirrors or not, so a site with a mirror and one without build
    the same image under their one hash."""
    from layerkit.lock.model import Lock, LockedPackage
    from layerkit.spec.load import load_text
    from layerkit.spec.merge import resolve
    from layerkit.spec.validate import check

    text = SPEC.replace("[python=3.11]", "[python=3.11, {pip: [tinywheel==1.0]}]")
    lock = Lock(
        source="m.conda-lock.yml",
        packages=(
            LockedPackage(manager="conda", platform="linux-64", name="python", version="3.11.9",
                          url="https://conda.anaconda.org/demo/linux-64/python-3.11.9-h0.conda", sha256="1" * 64),
            LockedPackage(manager="pip", platform="linux-64", name="tinywheel", version="1.0",
                          url="https://files.example/tinywheel-1.0-py3-none-any.whl", sha256="2" * 64),
        ),
    )  # fmt: skip
    plain = check(resolve(load_text(text, "m.yaml")))
    mirrored = check(
        resolve(load_text(text + f"mirrors:\n  channels: {{demo: '{MIRROR}/demo'}}\n", "m.yaml"))
    )
    for checked, table in ((plain, ""), (mirrored, " --table canonical-urls.json")):
        r = api.render(checked, lock, auto_lock=False)
        assert "canonical_urls.py" in dict(r.plan.context_files)
        assert (
            f"canonical_urls.py --prefix /opt/env{table} --requirements requirements-linux-64.txt"
            in r.dockerfile
        )
    assert api.hash_spec(plain, lock).hash == api.hash_spec(mirrored, lock).hash
    # Unlocked, pip records no URL of ours: nothing to drop, nothing shipped.
    unlocked = api.render(plain, auto_lock=False)
    assert "canonical_urls.py" not in dict(unlocked.plan.context_files)
