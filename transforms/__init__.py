"""The KPI layer: intermediate models, marts and the KPI pack, rebuilt per natural day."""

from pathlib import Path

from common.sql import SqlFolder

SQL = SqlFolder(Path(__file__).resolve().parent / "sql")
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
