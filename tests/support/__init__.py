"""Helpers and fixture plugins shared by unit and integration tests."""

from pathlib import Path

# Fixture data with their sources (each folder has a README).
TEST_DATA = Path(__file__).resolve().parents[1] / "data"
