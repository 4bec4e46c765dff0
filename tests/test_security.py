"""No spec value can inject a Dockerfile instruction: hostile values are refused (exit 2) or
quoted so the Dockerfile keeps exactly the instructions layerkit meant."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layerkit import api
from layerkit.errors import SpecError
from layerkit.spec.load import load_text
from layerkit.spec.merge import resolve
from layerkit.spec.validate import check

HOSTILE = [
    "x\nRUN curl evil | sh",
    "x\rRUN id",
    "x \\",
    "x\\\nRUN id",
    "cat <<EOF\nRUN id\nEOF",
    "x\u2028RUN id",
    "$(id)",
    '"; RUN id; echo "',
    "${PATH}\\",
]


def logical_instructions(dockerfile: str) -> list[str]:
    """Instruction keywords as Docker's parser sees them (comments dropped, continuations joined)."""
    out: list[str] = []
    joined = ""
    for line in dockerfile.split("\n"):
        if not joined and (line.startswith("#") or not line.strip()):
            continue
        joined += line
        if joined.endswith("\\"):
            joined = joined[:-1]
            continue
        out.append(joined.split(None, 1)[0].upper())
        joined = ""
    return out


def render(doc: dict[str, object]) -> str | None:
    try:
        return api.render(
            check(resolve(load_text(json.dumps(doc), "hostile.json"))), auto_lock=False
        ).dockerfile
    except SpecError:
        return None


BASELINE = render({"name": "x", "env": {"A": "1"}, "steps": [{"run": "true"}]})
assert BASELINE is not None
EXPECTED = logical_instructions(BASELINE)


def places(value: str) -> list[dict[str, object]]:
    return [
        {"name": "x", "env": {"A": value}, "steps": [{"run": "true"}]},
        {"name": "x", "env": {"A": "1"}, "steps": [{"run": value}]},
        {"name": "x", "env": {"A": "1"}, "steps": [{"run": ["sh", "-c", value]}]},
        {"name": "x", "env": {"A": "1"}, "steps": [{"run": "true"}], "apt": [value]},
        {"name": "x", "env": {"A": "1"}, "steps": [{"run": "true"}], "runtime": {"workdir": value}},
        {"name": "x", "env": {"A": "1"}, "steps": [{"run": "true"}], "runtime": {"user": value}},
        {"name": "x", "env": {"A": "1"}, "steps": [{"run": "true"}], "base": {"image": value}},
        {"name": "x", "env": {"A": "1"}, "steps": [{"run": "true"}], "conda": {"dependencies": [value]}},
        {"name": "x", "env": {"A": "1"}, "steps": [{"run": "true"}], "conda": {"channels": [value]}},
        {"name": "x", "env": {"A": "1"}, "steps": [{"run": "true"}], "mirrors": {"pypi_index": value}},
        {"name": "x", "env": {value: "1"}, "steps": [{"run": "true"}]},
    ]


def assert_safe(doc: dict[str, object]) -> None:
    out = render(doc)
    if out is None:
        return
    got = logical_instructions(out)
    user_image = "base" in doc
    if user_image:
        assert got.count("RUN") == EXPECTED.count("RUN") and got.count("FROM") == EXPECTED.count("FROM"), out
    elif "apt" in doc:
        assert got.count("RUN") == EXPECTED.count("RUN") + 1, out  # the apt-get RUN
    else:
        assert got == EXPECTED, out


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_are_refused_or_quoted(value: str) -> None:
    for doc in places(value):
        assert_safe(doc)


def test_newline_in_step_is_refused() -> None:
    assert render({"steps": [{"run": "echo\nRUN id"}]}) is None


def test_env_value_is_quoted_and_dollar_escaped() -> None:
    out = render({"env": {"A": 'a"b$c\\d'}})
    assert out is not None and 'A="a\\"b\\$c\\\\d"' in out


def test_base_dockerfile_is_the_users_own_but_its_stage_names_are_checked() -> None:
    with pytest.raises(SpecError, match="stage name 'env' is used by layerkit"):
        api.render(
            check(resolve(load_text(json.dumps({"base": {"dockerfile": "FROM a:1 AS env"}}), "s.json"))),
            auto_lock=False,
        )


# No deadline nor speed check: a loaded machine is slow, not wrong.
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=30))
def test_fuzzed_values_never_add_instructions(value: str) -> None:
    for doc in places(value):
        assert_safe(doc)


def test_exec_form_is_json() -> None:
    out = render({"steps": [{"run": ["echo", 'a"b', "c\\d"]}]})
    assert out is not None
    line = next(ln for ln in out.splitlines() if ln.startswith('RUN ["echo"'))
    assert json.loads(re.sub(r"^RUN ", "", line)) == ["echo", 'a"b', "c\\d"]
