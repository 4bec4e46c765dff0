"""A conda channel whose python is a venv of the Debian 12 base's interpreter with pip in it,
and a wheel on the PyPI mirror: what an env stage's native pip RUN needs (test_verify_lock,
test_mirror_digest)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import fixtures_channels as fx

# The site's python wraps the base's interpreter and has no pip; this channel's is a venv of
# it (pyvenv.cfg, bin/python -> /usr/bin/python3.11: the Debian 12 base's), with pip as a conda
# package made from this host's pip, so the env stage's pip RUN installs into /opt/env.
PYVENV = "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n"
SITE_PACKAGES = "lib/python3.11/site-packages"


def _conda_package(
    channel: Path, pkg: fx.PkgDef, files: dict[str, bytes], links: dict[str, str] | None = None
) -> None:
    """A .tar.bz2 package with regular files and symbolic links."""
    links = links or {}
    entries: list[dict[str, object]] = [
        {
            "_path": p,
            "path_type": "hardlink",
            "sha256": hashlib.sha256(d).hexdigest(),
            "size_in_bytes": len(d),
        }
        for p, d in sorted(files.items())
    ]
    entries += [{"_path": p, "path_type": "softlink"} for p in sorted(links)]
    meta = {
        "info/index.json": json.dumps(pkg.index_json(), sort_keys=True).encode(),
        "info/paths.json": json.dumps({"paths": entries, "paths_version": 1}).encode(),
        "info/files": "".join(f"{p}\n" for p in sorted([*files, *links])).encode(),
    }
    target = channel / pkg.subdir / pkg.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:bz2", compresslevel=1) as tf:
        for name, data in [*meta.items(), *sorted(files.items())]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tf.addfile(info, io.BytesIO(data))
        for name, dest in sorted(links.items()):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, dest, 0
            tf.addfile(info)


def pip_channel(root: Path) -> Path:
    import pip
    from rattler.index import index_fs

    (root / "noarch").mkdir(parents=True, exist_ok=True)
    links = {"bin/python": "/usr/bin/python3.11", "bin/python3": "python", "bin/python3.11": "python"}
    _conda_package(root, fx.PkgDef("python", "3.11.9", "venv_0"), {"pyvenv.cfg": PYVENV.encode()}, links)
    host = Path(pip.__file__).parent.parent
    files = {
        f"{SITE_PACKAGES}/{f.relative_to(host)}": f.read_bytes()
        for d in (host / "pip", next(host.glob(f"pip-{pip.__version__}.dist-info")))
        for f in d.rglob("*")
        if f.is_file() and "__pycache__" not in f.parts
    }
    _conda_package(root, fx.PkgDef("pip", pip.__version__, "venv_0", depends=["python >=3.8"]), files)
    asyncio.run(index_fs(root, write_zst=False, write_shards=False, force=True))
    return root


def publish_wheel(index: Path, payload: str) -> str:
    """(Re)write tinywheel 1.0 (TAG = payload) on the mirror, its page agreeing; its sha256."""
    dist = "tinywheel-1.0.dist-info"
    files = {
        "tinywheel/__init__.py": f"TAG = {payload!r}\n".encode(),
        f"{dist}/METADATA": b"Metadata-Version: 2.1\nName: tinywheel\nVersion: 1.0\n",
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: layerkit-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{p},sha256={fx._b64_sha256(d)},{len(d)}" for p, d in files.items()]
    files[f"{dist}/RECORD"] = ("\n".join([*record, f"{dist}/RECORD,,"]) + "\n").encode()
    wheel = index / "files" / "tinywheel-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    page = index / "simple" / "tinywheel" / "index.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(f'<a href="../../files/{wheel.name}#sha256={digest}">{wheel.name}</a>\n')
    top = "".join(f'<a href="{p}/">{p}</a>\n' for p in ("py-rattler", "tinywheel"))
    (index / "simple" / "index.html").write_text(top)
    return digest
