"""``citypipe warehouse maintain`` (housekeeping, as the citypipe_maintenance DAG does) and
``citypipe warehouse migrate --to URL`` (copy a single-file warehouse into a DuckLake).

Only light imports at module level: citypipe/cli.py imports this module for its help.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from datetime import timedelta
from pathlib import Path

from common.settings import Settings

# Exit status when there is nothing to work on (no warehouse yet).
EXIT_NO_WAREHOUSE = 1
# migrate: a table differs after the copy / nothing was copied.
EXIT_MISMATCH = 1
EXIT_NOT_COPIED = 2


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

    g = wsub.add_parser(
        "migrate",
        help="copy a single-file warehouse into a DuckLake, verified table by table",
        description=(
            "Run the migrations on the lake named by --to, then copy every table of the"
            " single-file warehouse (the settings' current one, or --from) except the migration"
            " ledger, one transaction per table, and verify each on both sides: row count and"
            " an order-independent checksum (sum of the rows' hashes). Prints one line per"
            " table. The source is opened read-only and never changed. A target whose tables"
            " already hold rows is refused unless --force, which replaces those rows. Exit"
            " status: 0 all verified, 1 a table differs, 2 nothing copied (bad source or"
            " target). Afterwards point CITYPIPE_WAREHOUSE (and CITYPIPE_WAREHOUSE_DATA_PATH)"
            " at the lake."
        ),
    )
    g.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="the lake: ducklake:sqlite:///path/catalog.sqlite or ducklake:postgres://...",
    )
    g.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=None,
        metavar="PATH",
        help="the DuckDB file to copy (default: the settings' current warehouse)",
    )
    g.add_argument(
        "--data-path",
        default=None,
        help="the lake's data files: a folder or s3://bucket/prefix/"
        " (default: CITYPIPE_WAREHOUSE_DATA_PATH, else {home}/warehouse/lake/)",
    )
    g.add_argument(
        "--force", action="store_true", help="replace the rows of a target that already has some"
    )
    g.set_defaults(func=migrate_command)


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


def migrate_command(args: argparse.Namespace, settings: Settings) -> int:
    from common.warehouse_url import WarehouseUrlError
    from transforms import MIGRATIONS_DIR as KPI_MIGRATIONS
    from warehouse import MIGRATIONS_DIR as WAREHOUSE_MIGRATIONS
    from warehouse import db
    from warehouse.transfer import TransferError, copy_to_lake, format_report, lake_settings

    current = settings.warehouse_target
    if args.source is None and current.is_lake:
        print(
            f"citypipe warehouse migrate: the current warehouse is already a lake"
            f" ({current.describe()}); name the DuckDB file to copy with --from",
            file=sys.stderr,
        )
        return EXIT_NOT_COPIED
    source = args.source or settings.warehouse_path
    try:
        target = lake_settings(settings, args.to, args.data_path)
    except WarehouseUrlError as exc:
        print(f"citypipe warehouse migrate: {exc}", file=sys.stderr)
        return EXIT_NOT_COPIED
    # The settings' own file: hold its read lock, so no writer changes it during the copy.
    lock = db.shared_lock(settings) if args.source is None else contextlib.nullcontext()
    try:
        with lock:
            copies = copy_to_lake(
                Path(source), target, (WAREHOUSE_MIGRATIONS, KPI_MIGRATIONS), force=args.force
            )
    except TransferError as exc:
        print(f"citypipe warehouse migrate: {exc}", file=sys.stderr)
        return EXIT_NOT_COPIED
    print(f"copied {source} -> {target.warehouse_target.describe()}")
    print(format_report(copies))
    bad = [c.name for c in copies if not c.verified]
    if bad:
        print(
            f"citypipe warehouse migrate: {len(bad)} table(s) differ: {', '.join(bad)}",
            file=sys.stderr,
        )
        return EXIT_MISMATCH
    print(
        f"all {len(copies)} tables verified; to use the lake set"
        f" CITYPIPE_WAREHOUSE={args.to}"
        + (f" CITYPIPE_WAREHOUSE_DATA_PATH={target.lake_data_path}")
    )
    return 0
