"""Every spec in tests/bad/ fails with exit 2 and one line `file:line:col: error: ...`, the
same line from `validate` and from `render` (validate runs every check render runs).

An `# expect:` header is `LINE:COL: message` (at the spec), `FILE:LINE:COL: message` (at
FILE beside it, e.g. a base Dockerfile) or a message the line must contain."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BAD = Path(__file__).parent / "bad"
CASES = sorted(p for p in BAD.iterdir() if p.suffix in (".yaml", ".json"))
JSON_EXPECT = {
    "09-hosted-reserved.json": "1:10: name 'AzureML-Custom' uses a prefix reserved",
    "23-literal-password.json": "1:117: baseImageRegistry.username holds a literal credential",
}


def expected(path: Path) -> str:
    if path.suffix == ".json":
        return JSON_EXPECT[path.name]
    first = path.read_text().splitlines()[0]
    m = re.match(r"# expect: (.*)", first)
    assert m, f"{path.name} lacks an '# expect:' header"
    return m.group(1)


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("command", ["validate", "render"])
@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_bad_spec(cli, path: Path, command: str) -> None:
    r = cli(command, path)
    assert r.code == 2, r.err
    assert r.out == ""
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    # A cycle is reported where it closes, which may be another layer of the chain.
    origin = path if "cycle" not in path.name else BAD
    want = expected(path)
    other = re.match(r"([\w.-]+):(\d+:\d+: .*)", want)
    if other:  # reported at a file the spec names
        origin, want = BAD / other.group(1), other.group(2)
        path = origin
    assert lines[0].startswith(f"{origin}"), lines[0]
    assert ": error: " in lines[0]
    assert "Traceback" not in r.err
    if re.match(r"\d+:\d+: ", want) and origin == path:
        pos, _, msg = want.partition(": ")
        assert lines[0].startswith(f"{path}:{pos}: error: "), (lines[0], want)
        assert msg in lines[0]
    else:
        assert want in lines[0], (lines[0], want)


def test_real_process_exit_code_and_no_traceback() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "layerkit", "validate", str(BAD / "01-unknown-key.yaml")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and "did you mean 'channels'" in r.stderr
