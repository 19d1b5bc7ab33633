"""`citypipe demo`: the whole chain on embedded defaults (filled in as the issues land)."""

from __future__ import annotations

import argparse

from citypipe.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job end to end on the embedded defaults")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    print(f"citypipe demo: data directory {settings.home}")
    return 0
