"""The read-only HTTP API (`citypipe serve`, docs/serving.md): KPIs, station values, data
quality and alerts, read from the warehouse without ever blocking a writer or being blocked."""

from __future__ import annotations

from pathlib import Path

from common.sql import SqlFolder

SQL = SqlFolder(Path(__file__).resolve().parent / "sql")
