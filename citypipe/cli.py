"""The ``citypipe`` console command.

Each subcommand lives with the package that owns its logic; the module exposes
``register(subparsers)`` adding parsers whose ``func(args, settings) -> int`` runs the command.
Heavy libraries (Great Expectations, Airflow) are imported inside those functions, not here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from common.datadir import DataGroupError, apply_data_policy
from common.settings import get_settings

# Which module contributes each subcommand, in help order.
COMMANDS = {
    "demo": "citypipe.demo",
    "simulate": "simulator.simulate",
    "ingest": "ingestion.service",
    "alerts": "alerts.service",
    "run": "citypipe.rundag",
    "kpis": "transforms.cli",
    "backfill": "transforms.cli",
    "warehouse": "citypipe.warehouse_cli",
    "serve": "serving.cli",
    "broker-acl": "citypipe.broker_acl",
    "up": "citypipe.up",
}
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


def build_parser(modules: tuple[str, ...] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="citypipe", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def _command_modules(argv: list[str]) -> tuple[str, ...]:
    """Only the chosen command's module: the long-running ingest process then does not carry
    pyarrow and the simulator (~40 MB). Help, or no known command, loads them all."""
    words = iter(argv)
    for word in words:
        if word == "--log-level":
            next(words, None)
        elif word.startswith("-"):
            continue
        else:
            module = COMMANDS.get(word)
            return (module,) if module else COMMAND_MODULES
    return COMMAND_MODULES


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_command_modules(argv)).parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    settings = get_settings()
    try:
        # Before any file is written, also by child processes (ingest writer, Airflow runner).
        apply_data_policy(settings)
    except DataGroupError as exc:
        logging.getLogger("citypipe").error("%s", exc)
        return 2
    return int(args.func(args, settings) or 0)


if __name__ == "__main__":
    sys.exit(main())
