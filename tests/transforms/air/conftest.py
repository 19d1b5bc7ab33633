"""Fixtures for the air KPI tests (helpers live in air_helpers.py)."""

from __future__ import annotations

import duckdb
import pytest


@pytest.fixture
def mem() -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse with H3's migrations and the Wushan dim_site (fast)."""
    from citypipe.settings import get_settings
    from warehouse.dims import load_dim_site
    from warehouse.migrate import migrate

    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    migrate(con)
    load_dim_site(con, get_settings())
    return con
