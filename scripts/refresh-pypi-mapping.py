#!/usr/bin/env python3
"""Refresh layerkit/lock/pypi-mapping.json.gz from the conda-pypi wheel on PyPI.

Usage: python3 scripts/refresh-pypi-mapping.py [VERSION]
The wheel ships conda-forge's grayskull PyPI mapping as conda_pypi/grayskull_pypi_mapping.json;
only the data table is kept (pypi_name, conda_name), sorted, so a refresh diffs cleanly.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "layerkit" / "lock" / "pypi-mapping.json.gz"
SOURCE = TARGET.with_name("pypi-mapping.source")
MEMBER = "conda_pypi/grayskull_pypi_mapping.json"


def main(argv: list[str]) -> int:
    req = f"conda-pypi=={argv[0]}" if argv else "conda-pypi"
    with tempfile.TemporaryDirectory() as tmp:
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp, req]
        subprocess.run(pip, check=True)
        wheel = next(Path(tmp).glob("conda_pypi-*.whl"))
        version = wheel.name.split("-")[1]
        with zipfile.ZipFile(wheel) as zf:
            table = json.loads(zf.read(MEMBER))
    out = {
        k: {"pypi_name": v["pypi_name"], "conda_name": v["conda_name"]}
        for k, v in sorted(table.items())
        if v.get("conda_name")
    }
    data = json.dumps(out, sort_keys=True, separators=(",", ":")).encode()
    with gzip.GzipFile(TARGET, "wb", compresslevel=9, mtime=0) as f:
        f.write(data)
    text = SOURCE.read_text().splitlines()
    text = [
        f"Taken from: the PyPI package conda-pypi {version} (MIT), file {MEMBER}."
        if line.startswith("Taken from:")
        else f"Entries: {len(out)}."
        if line.startswith("Entries:")
        else line
        for line in text
    ]
    SOURCE.write_text("\n".join(text) + "\n")
    print(f"{TARGET}: {len(out)} entries from conda-pypi {version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
