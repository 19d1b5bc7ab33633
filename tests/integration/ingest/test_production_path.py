"""`ingestion/` is the production path only: neither the service nor the writer loads the simulator."""

from __future__ import annotations

import ast
import subprocess
import sys

from common.settings import REPO_ROOT


def test_no_ingestion_module_imports_the_simulator() -> None:
    offenders = []
    for path in sorted((REPO_ROOT / "ingestion").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            offenders += [
                f"{path.name}: {n}" for n in names if n == "simulator" or n.startswith("simulator.")
            ]
    assert offenders == []


def test_ingest_command_and_writer_load_no_simulator_module() -> None:
    code = (
        "import sys; from citypipe.cli import build_parser, _command_modules;"
        "build_parser(_command_modules(['ingest']));"
        "import ingestion.writer, ingestion.writer_link, ingestion.session;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'simulator'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
