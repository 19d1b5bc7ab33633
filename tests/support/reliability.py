"""The reliability suite's shared parts (tests/reliability, `make test-reliability`).

- ``SCALE`` / ``at_scale``: each case runs at two sizes. ``ci`` (the default, what `make test`
  and CI run: the bounded part) and ``full`` (``CITYPIPE_RELIABILITY_SCALE=full``, what
  `make test-reliability` runs: the sizes the issue asks for, e.g. 100,000 readings, 3 minutes).
- ``figures``: a test records what it measured (``figures.add("lost", 0, "readings")``). The
  run prints one table of every figure at the end and writes it to
  ``test-artifacts/reliability-figures.{md,json}`` (docs/reliability.md quotes it).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from common.settings import REPO_ROOT

SCALE = os.environ.get("CITYPIPE_RELIABILITY_SCALE", "ci")
if SCALE not in ("ci", "full"):
    raise pytest.UsageError(f"CITYPIPE_RELIABILITY_SCALE must be 'ci' or 'full', not {SCALE!r}")

T = TypeVar("T")


def at_scale(ci: T, full: T) -> T:
    """``full`` under `make test-reliability`, ``ci`` otherwise (the part CI runs)."""
    return full if SCALE == "full" else ci


@dataclass(frozen=True)
class Figure:
    case: str  # the test, "module::test" without the "test_" prefixes
    metric: str  # what was measured, in words: "lost readings", "RSS max"
    value: Any  # a number (or a short text, e.g. "none")
    unit: str = ""  # "readings", "MB", "MB/min", "s", "requests"
    note: str = ""  # one short clause of context


_FIGURES: list[Figure] = []
_STARTED = datetime.now(UTC)
_LOAD_AT_START = os.getloadavg()


class Figures:
    """What one test measured; collected for the end-of-run table."""

    def __init__(self, case: str) -> None:
        self.case = case

    def add(self, metric: str, value: Any, unit: str = "", note: str = "") -> None:
        if isinstance(value, float):
            value = round(value, 3)
        _FIGURES.append(Figure(self.case, metric, value, unit, note))


def _case_name(item: pytest.Item) -> str:
    module = Path(str(item.path)).stem.removeprefix("test_")
    return f"{module}::{item.name.removeprefix('test_')}"


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """Record figures: ``figures.add(metric, value, unit, note)``; printed at the end of the run."""
    return Figures(_case_name(request.node))


def _table(rows: list[Figure]) -> list[str]:
    head = ["case", "metric", "value", "unit", "note"]
    cells = [[f.case, f.metric, _fmt(f.value), f.unit, f.note] for f in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]

    def line(cs: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cs, widths, strict=True)) + " |"

    return [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells)]


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return str(value)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _FIGURES:
        return
    load_end = os.getloadavg()
    context = (
        f"scale {SCALE}; {platform.node()}, {os.cpu_count()} CPUs; "
        f"started {_STARTED:%Y-%m-%d %H:%M} UTC; load average "
        f"{_LOAD_AT_START[0]:.1f} at start, {load_end[0]:.1f} at end"
    )
    lines = _table(_FIGURES)
    terminalreporter.section("reliability figures")
    terminalreporter.write_line(context)
    for line in lines:
        terminalreporter.write_line(line)
    out = Path(os.environ.get("CITYPIPE_TEST_ARTIFACTS", REPO_ROOT / "test-artifacts"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "reliability-figures.md").write_text(context + "\n\n" + "\n".join(lines) + "\n")
    (out / "reliability-figures.json").write_text(
        json.dumps(
            {"context": context, "figures": [asdict(f) for f in _FIGURES]},
            ensure_ascii=False,
            indent=1,
            default=str,
        )
    )
