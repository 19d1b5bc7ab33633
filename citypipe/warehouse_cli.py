"""``citypipe warehouse maintain`` (housekeeping, as the citypipe_maintenance DAG does) and
``citypipe warehouse migrate --to URL`` (copy a single-file warehouse into a DuckLake).

Only light imports at module level: citypipe/cli.py imports this module for its help.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta

from common.settings import Settings

# Exit status when there is nothing to work on (no warehouse yet).
EXIT_NO_WAREHOUSE = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("warehouse", help="warehouse housekeeping and migration to DuckLake")
    wsub = p.add_subparsers(dest="warehouse_command", required=True, metavar="ACTION")

    m = wsub.add_parser(
        "maintain",
        help="compact files, expire old snapshots, report sizes (the citypipe_maintenance DAG)",
        description=(
            "DuckLake: merge small adjacent data files, expire snapshots older than the"
            " retention (CITYPIPE_SNAPSHOT_RETENTION_DAYS), delete files nothing reads any more,"
            " and print the catalog's size, data files and snapshots before and after."
            " Single DuckDB file: CHECKPOINT (DuckDB compacts its own file) and its size."
        ),
    )
    m.add_argument(
        "--retention-days",
        type=int,
        default=None,
        help="expire snapshots older than this many days (default: the setting)",
    )
    m.add_argument(
        "--grace-minutes",
        type=float,
        default=None,
        help="keep replaced files this long for readers still scanning them (default 60)",
    )
    m.add_argument("--format", choices=("table", "json"), default="table")
    m.set_defaults(func=maintain_command)


def maintain_command(args: argparse.Namespace, settings: Settings) -> int:
    from steps.maintenance import run
    from warehouse.maintenance import NoWarehouse, format_report

    if args.retention_days is not None and args.retention_days < 0:
        print("citypipe warehouse maintain: --retention-days must be >= 0", file=sys.stderr)
        return 2
    grace = None if args.grace_minutes is None else timedelta(minutes=args.grace_minutes)
    try:
        result = run(settings, retention_days=args.retention_days, cleanup_grace=grace)
    except NoWarehouse as exc:
        print(f"citypipe warehouse maintain: {exc}", file=sys.stderr)
        return EXIT_NO_WAREHOUSE
    if args.format == "json":
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(format_report(result))
    return 0
