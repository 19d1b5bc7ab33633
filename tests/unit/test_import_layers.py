"""The one direction of imports (docs/architecture.md), checked over every .py file of the project.

This file holds the layer table; the doc shows it. Every import counts: module level,
function-local, under ``if TYPE_CHECKING:``, and ``importlib.import_module("literal")``.
tests/ is not checked: tests exercise every layer (and the DAGs through Airflow).
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.settings import REPO_ROOT

ROOT = REPO_ROOT

# The base, then the stages in data order, then the steps layer: each may import itself and
# what is listed before it, never what comes after.
ORDER = ("common", "ingestion", "alerts", "expectations", "warehouse", "transforms", "steps")

# Pairs that the order would allow but the architecture does not: validation (GX) and the load
# are siblings that only the steps layer composes, so the warehouse runs without GX.
SIBLINGS = frozenset(
    {
        ("warehouse", "expectations"),
        # The alert service is a stage of its own beside the batch path (it reads MQTT, not the
        # landing zone): the batch stages never import it.
        ("expectations", "alerts"),
        ("warehouse", "alerts"),
        ("transforms", "alerts"),
    }
)

# Which packages a package may import (itself included).
MAY_IMPORT: dict[str, frozenset[str]] = {
    **{
        pkg: frozenset(p for p in ORDER[: i + 1] if (pkg, p) not in SIBLINGS)
        for i, pkg in enumerate(ORDER)
    },
    # Stands in for the sensors: it publishes as a device would, on the base only.
    "simulator": frozenset({"simulator", "common"}),
    # The application sits above everything; its packages do not import each other.
    "citypipe": frozenset({"citypipe", "simulator", *ORDER}),
    "bench": frozenset({"bench", "simulator", *ORDER}),
    # DAG files only wire: the steps layer and the base (settings), nothing else of ours.
    "dags": frozenset({"dags", "steps", "common"}),
}

# Only the DAG folder imports Airflow; every step is importable and tested without it.
AIRFLOW_ALLOWED = frozenset({"dags"})

# Folders that hold no code of the project (data/ is the demo's and tests' data home).
NOT_CODE = frozenset({"tests", "docs", "reference", "deploy", "scripts", "data"})

# Known violations, (importing module, imported module or package) -> why it is still there.
# Only while issue 8 is being merged: the coordinator empties this list once the branches that
# remove these imports are in. An entry that no longer matches anything is reported as a warning.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {
    # Empty since the architecture pass: add an entry only with the reason and its way out.
}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    importer: str
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} imports {self.imported} ({self.rule})"


def module_name(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every static import in the source."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:  # relative: resolve against this module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                keep = len(package) - (node.level - 1)
                base = ".".join([*package[: max(keep, 0)], *([node.module] if node.module else [])])
            if base:
                yield node.lineno, base
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (
                    isinstance(node.func, ast.Name)
                    and node.func.id in {"import_module", "__import__"}
                )
            )
        ):
            yield node.lineno, node.args[0].value


def check_source(source: str, rel: Path) -> list[Violation]:
    """The layer violations of one file, given its path relative to the project root."""
    module = module_name(rel)
    package = rel.parts[0]
    allowed = MAY_IMPORT.get(package)
    if allowed is None:
        return [Violation(str(rel), 0, module, "-", f"package {package!r} is not in MAY_IMPORT")]
    found = []
    for line, imported in imported_modules(source, module, rel.name == "__init__.py"):
        top = imported.split(".")[0]
        if top == "airflow" and package not in AIRFLOW_ALLOWED:
            found.append(Violation(str(rel), line, module, imported, "airflow outside dags/"))
        elif top in MAY_IMPORT and top not in allowed:
            found.append(Violation(str(rel), line, module, imported, f"{package} -> {top}"))
    return found


def project_files() -> list[Path]:
    """Every .py file of the project's packages (hidden folders such as .venv never entered)."""
    files: list[Path] = []
    for top in sorted(ROOT.iterdir()):
        if top.name.startswith(".") or top.name in NOT_CODE:
            continue
        paths = sorted(top.rglob("*.py")) if top.is_dir() else [top] if top.suffix == ".py" else []
        files.extend(path.relative_to(ROOT) for path in paths)
    return files


def known(v: Violation) -> bool:
    return any(
        v.importer == importer and (v.imported == target or v.imported.startswith(target + "."))
        for importer, target in KNOWN_VIOLATIONS
    )


def all_violations() -> list[Violation]:
    out: list[Violation] = []
    for rel in project_files():
        out.extend(check_source((ROOT / rel).read_text(encoding="utf-8"), rel))
    return out


def test_the_project_has_code_in_every_layer() -> None:
    packages = {rel.parts[0] for rel in project_files()}
    missing = set(ORDER) - packages
    assert not missing, f"layers without code: {missing}"


def test_no_module_imports_a_layer_above_it() -> None:
    violations = all_violations()
    new = [str(v) for v in violations if not known(v)]
    assert not new, "imports against the layer order (docs/architecture.md):\n" + "\n".join(new)
    stale = [
        f"{importer} -> {target}"
        for (importer, target) in KNOWN_VIOLATIONS
        if not any(
            v.importer == importer and (v.imported == target or v.imported.startswith(target + "."))
            for v in violations
        )
    ]
    if stale:
        warnings.warn(
            "KNOWN_VIOLATIONS entries no longer needed, remove them: " + ", ".join(stale),
            UserWarning,
            stacklevel=1,
        )


def test_every_package_is_placed_in_a_layer() -> None:
    unplaced = sorted({rel.parts[0] for rel in project_files()} - set(MAY_IMPORT))
    assert not unplaced, f"new top-level packages must be placed in MAY_IMPORT: {unplaced}"


def test_architecture_doc_names_every_layer() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [pkg for pkg in MAY_IMPORT if f"`{pkg}/`" not in doc]
    assert not missing, f"docs/architecture.md does not show: {missing}"


# The checker itself, on synthetic modules: a check that cannot fail guards nothing.


def violations_of(source: str, path: str) -> list[str]:
    return [f"{v.line}:{v.imported}:{v.rule}" for v in check_source(source, Path(path))]


def test_catches_an_import_of_a_layer_above() -> None:
    source = "from common.sql import SqlFolder\nimport transforms.daily\n"
    assert violations_of(source, "warehouse/fake.py") == [
        "2:transforms.daily:warehouse -> transforms"
    ]


def test_catches_function_local_type_checking_and_importlib_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import importlib\n"
        "if TYPE_CHECKING:\n"
        "    from steps.ingest import Found\n"
        "def f():\n"
        "    from warehouse import db\n"
        "    return importlib.import_module('citypipe.demo')\n"
    )
    assert violations_of(source, "expectations/fake.py") == [
        "4:steps.ingest:expectations -> steps",
        "6:warehouse:expectations -> warehouse",
        "7:citypipe.demo:expectations -> citypipe",
    ]


def test_catches_airflow_outside_dags_and_dags_reaching_past_steps() -> None:
    assert violations_of("from airflow.sdk import task\n", "steps/fake.py") == [
        "1:airflow.sdk:airflow outside dags/"
    ]
    assert violations_of("from airflow.sdk import task\n", "dags/fake.py") == []
    assert violations_of("from warehouse.db import connect\n", "dags/fake.py") == [
        "1:warehouse.db:dags -> warehouse"
    ]


def test_simulator_may_import_the_base_only() -> None:
    assert violations_of("from common.mqtt import parse_url\n", "simulator/fake.py") == []
    assert violations_of("from ingestion.service import X\n", "simulator/fake.py") == [
        "1:ingestion.service:simulator -> ingestion"
    ]
    # and no stage imports the simulator: production never runs it
    assert violations_of("import simulator.simulate\n", "ingestion/fake.py") == [
        "1:simulator.simulate:ingestion -> simulator"
    ]


def test_warehouse_does_not_import_expectations() -> None:
    source = "from expectations.validate import validate_batch\n"
    assert violations_of(source, "warehouse/fake.py") == [
        "1:expectations.validate:warehouse -> expectations"
    ]
    assert violations_of(source, "steps/fake.py") == []


def test_allows_imports_downwards_and_relative_imports_within_a_package() -> None:
    source = "from warehouse import db\nfrom ingestion.schema import X\nfrom . import daily\nfrom .sql import Y\n"
    assert violations_of(source, "transforms/fake.py") == []
    assert violations_of("from .. import x\n", "transforms/sub/__init__.py") == []


def test_relative_import_is_resolved() -> None:
    # in transforms/sub/mod.py, `from .. import daily` is an import of the transforms package
    source = "from .. import daily\n"
    assert list(imported_modules(source, "transforms.sub.mod", is_package=False)) == [
        (1, "transforms")
    ]


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_unknown_packages_are_flagged(package: str) -> None:
    assert violations_of("import os\n", f"{package}/fake.py") == []
    assert violations_of("import os\n", "newpkg/fake.py") == [
        "0:-:package 'newpkg' is not in MAY_IMPORT"
    ]
