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

from citypipe.settings import get_settings

# Modules that contribute subcommands, in help order.
COMMAND_MODULES = (
    "citypipe.demo",  # demo
    "ingestion.simulate",  # simulate
    "ingestion.service",  # ingest
    "citypipe.rundag",  # run
    "transforms.cli",  # kpis, backfill
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="citypipe", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real import error inside the module: surface it
                raise
            continue  # subcommand not built yet
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return int(args.func(args, get_settings()) or 0)


if __name__ == "__main__":
    sys.exit(main())
