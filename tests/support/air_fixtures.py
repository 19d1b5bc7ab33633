"""Fixtures for the air KPI tests (helpers live in air_helpers.py)."""

from __future__ import annotations

import duckdb
import pytest


@pytest.fixture
def mem() -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse with the warehouse migrations and the Wushan dim_site (fast)."""
    from common.migrate import migrate
    from common.settings import get_settings
    from warehouse import MIGRATIONS_DIR as WAREHOUSE_MIGRATIONS
    from warehouse.dims import load_dim_site

    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    migrate(con, WAREHOUSE_MIGRATIONS)
    load_dim_site(con, get_settings())
    return con
