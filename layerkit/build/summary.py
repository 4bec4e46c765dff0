"""How a build result is printed (stdout and the one-line summary on stderr).

Kept apart from the builder so that printing a result imports nothing heavy.
"""

from __future__ import annotations

import json


def render(result: dict[str, object], json_output: bool) -> tuple[str, str]:
    """(stdout, stderr) for a build result as BuildResult.to_json() gives it."""
    if json_output:
        return json.dumps(result, indent=2, sort_keys=True) + "\n", ""
    size = result.get("size")
    total = result.get("total_steps")
    seconds = result.get("seconds")
    size_text = f", {size / 1e6:.1f} MB" if isinstance(size, int) else ""
    steps = f", {result.get('cached_steps')}/{total} steps cached" if total else ""
    secs = float(seconds) if isinstance(seconds, (int, float)) else 0.0
    line = f"{result['action']} {result['image']} in {secs:.1f}s{steps}{size_text}\n"
    return f"{result['image']}\n", line
