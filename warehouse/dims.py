"""core.dim_site from the version-controlled site catalogue."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from common.catalogue import Catalogue, load_catalogue
from common.settings import Settings
from warehouse import SQL

# Catalogue attribute -> dim_site column, with the Arrow type it is stored as.
_ATTR_COLUMNS: dict[str, pa.DataType] = {
    "station_type": pa.string(),
    "is_assessment": pa.bool_(),
    "river_en": pa.string(),
    "river_zh": pa.string(),
    "water_body_type": pa.string(),
    "is_mainstream": pa.bool_(),
    "target_class": pa.string(),
    "cluster": pa.string(),
    "waterlogging_cm": pa.int32(),
    "closure_cm": pa.int32(),
    "danger_cm": pa.int32(),
    "road_en": pa.string(),
    "road_zh": pa.string(),
    "road_class": pa.string(),
    "is_old_town": pa.bool_(),
    "segment_length_km": pa.float64(),
    "free_flow_kmh": pa.float64(),
    "lanes": pa.int32(),
}


def dim_site_table(catalogue: Catalogue) -> pa.Table:
    sites = sorted(catalogue.sites.values(), key=lambda s: s.site_id)
    cols: dict[str, pa.Array] = {
        "site_id": pa.array([s.site_id for s in sites], pa.string()),
        "feed": pa.array([s.feed for s in sites], pa.string()),
        "kind": pa.array([s.kind for s in sites], pa.string()),
        "name_en": pa.array([s.name_en for s in sites], pa.string()),
        "name_zh": pa.array([s.name_zh for s in sites], pa.string()),
        "district": pa.array([s.district for s in sites], pa.string()),
        "lat": pa.array([s.lat for s in sites], pa.float64()),
        "lon": pa.array([s.lon for s in sites], pa.float64()),
        "period_s": pa.array([s.period_s for s in sites], pa.int32()),
        "device_ids": pa.array([list(s.device_ids) for s in sites], pa.list_(pa.string())),
        "valid_from": pa.array([s.valid_from for s in sites], pa.date32()),
    }
    for name, typ in _ATTR_COLUMNS.items():
        cols[name] = pa.array([s.get(name) for s in sites], typ)
    return pa.table(cols)


def _is_current(con: duckdb.DuckDBPyConnection, table: pa.Table) -> bool:
    """Whether core.dim_site already holds exactly these sites."""
    stored = SQL.relation(con, "core/select_dim_site.sql").to_arrow_table()
    if stored.num_rows != table.num_rows:
        return False
    try:
        return bool(stored.select(table.column_names).cast(table.schema).equals(table))
    except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False  # a column added or retyped since: replace


def load_dim_site(con: duckdb.DuckDBPyConnection, settings: Settings) -> int:
    """Replace core.dim_site from the catalogue when it differs (idempotent); caller owns the
    transaction.

    Every load and dq run calls this. Rewriting an unchanged dimension would make any two of
    them conflict on a lake (both delete from its one data file), so it is only read then. A
    replacement updates the claim row ``meta.claim_dim_site``: two writers that both find it
    out of date (or empty, where the delete touches no file) conflict instead of both
    inserting every site."""
    table = dim_site_table(load_catalogue(settings.reference_dir, settings.city))
    if _is_current(con, table):
        return int(table.num_rows)
    SQL.run(con, "core/update_dim_site_claim.sql")
    con.register("dim_site_rows", table)
    try:
        SQL.run(con, "core/replace_dim_site.sql")
    finally:
        con.unregister("dim_site_rows")
    return int(table.num_rows)
