"""Hypothesis fuzzing of the loader: any text or data gives a Spec or a SpecError, never
another exception (which the CLI would show as a traceback)."""

from __future__ import annotations

import contextlib
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layerkit.errors import SpecError
from layerkit.spec.load import load_text
from layerkit.spec.merge import resolve
from layerkit.spec.validate import check

KEYS = ["name", "version", "base", "image", "conda", "dependencies", "channels", "pip", "apt", "steps", "run",
        "env", "features", "gpu", "cuda", "mpi", "extends", "user_managed", "runtime", "python", "docker",
        "environment", "entryScript", "variables", "flavour", "dockerfile", "registry", "password_env"]  # fmt: skip
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
                    st.sampled_from(["3.11", "numpy>=1", "ubuntu:22.04", "cpu-ubuntu22.04", "openmpi", "10.0"]))  # fmt: skip
data = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=5),
    ),
    max_leaves=20,
)


def _load(text: str) -> None:
    with contextlib.suppress(SpecError):
        check(resolve(load_text(text, "fuzz.yaml")))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data)
def test_structured_input_never_crashes(value: object) -> None:
    _load(json.dumps(value))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_arbitrary_text_never_crashes(text: str) -> None:
    _load(text)
