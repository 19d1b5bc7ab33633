"""The steps of each DAG, importable without Airflow: the DAG files in dags/ only wire these.

A steps module sits above every stage and below the application (citypipe/).
"""

from __future__ import annotations

from common.settings import Settings


def writer_pool_slots(settings: Settings) -> int:
    """Slots of the Airflow pool ``citypipe_duckdb`` that every task writing the warehouse
    takes (created by dags/_runner.py): one on the single DuckDB file, several on a lake."""
    from warehouse.db import writer_slots

    return writer_slots(settings)
