"""The warehouse stage: typed, deduplicated observations, data-quality tables and the ledger."""

from pathlib import Path

from common.sql import SqlFolder

SQL = SqlFolder(Path(__file__).resolve().parent / "sql")
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
