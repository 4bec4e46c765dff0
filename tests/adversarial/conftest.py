"""The adversarial suite (issue 15 §6): every case carries one category, and the session ends
with the count of cases per category and how they fared. A case joins a category with one
decorator from cases.py (`@bad_input`, `@injection`, `@secrets`, `@cache`, `@faults`)."""

from __future__ import annotations

from collections import Counter

import pytest
from cases import CATEGORIES, MARKER

_outcomes: Counter[tuple[str, str]] = Counter()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(category): an adversarial case; category is one of {CATEGORIES}"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marks = list(item.iter_markers(MARKER))
        if not marks:
            continue
        category = marks[0].args[0]
        assert category in CATEGORIES, f"{item.nodeid}: unknown adversarial category {category!r}"
        item.user_properties.append((MARKER, category))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    category = dict(report.user_properties).get(MARKER)
    if category is None:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _outcomes[(str(category), report.outcome)] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _outcomes:
        return
    terminalreporter.section("adversarial suite: cases per category")
    for category in CATEGORIES:
        counts = {o: n for (c, o), n in _outcomes.items() if c == category}
        detail = ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "none run"
        terminalreporter.write_line(f"{category:>10}: {sum(counts.values()):4d} ({detail})")
