"""The command line loads only the chosen command's module, and help still lists them all."""

from __future__ import annotations

import subprocess
import sys

import pytest

from citypipe.cli import COMMAND_MODULES, _command_modules, build_parser


def test_only_the_chosen_command_module_is_loaded() -> None:
    assert _command_modules(["ingest", "--until-idle", "3"]) == ("ingestion.service",)
    assert _command_modules(["--log-level", "WARNING", "kpis", "--date", "2026-07-16"]) == (
        "transforms.cli",
    )
    assert _command_modules(["--help"]) == COMMAND_MODULES
    assert _command_modules(["no-such-command"]) == COMMAND_MODULES


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for command in ("demo", "simulate", "ingest", "run", "kpis", "backfill"):
        assert command in out


def test_ingest_process_does_not_import_pyarrow() -> None:
    # The service's network process stays lean; the writer process does the Arrow work.
    code = (
        "import sys; from citypipe.cli import build_parser, _command_modules;"
        "build_parser(_command_modules(['ingest'])); print('pyarrow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
