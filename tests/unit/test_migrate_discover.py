"""discover(): plain migrations in version order, each paired with its ``.lake.sql`` variant."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.migrate import discover
from transforms import MIGRATIONS_DIR as KPI_MIGRATIONS
from warehouse import MIGRATIONS_DIR as WAREHOUSE_MIGRATIONS


def _files(tmp_path: Path, *names: str) -> Path:
    for name in names:
        (tmp_path / name).write_text(f"-- {name}\nselect 1;\n")
    return tmp_path


def test_a_lake_variant_is_paired_with_its_plain_migration(tmp_path: Path) -> None:
    d = _files(tmp_path, "0001_a.sql", "0002_b.sql", "0002_b.lake.sql", "0003_c.sql")
    found = discover(d)
    assert [(m.version, m.name) for m in found] == [(1, "a"), (2, "b"), (3, "c")]
    assert [m.lake_path for m in found] == [None, d / "0002_b.lake.sql", None]
    b = found[1]
    assert b.file(lake=False) == d / "0002_b.sql"
    assert b.file(lake=True) == d / "0002_b.lake.sql"
    assert found[0].file(lake=True) == d / "0001_a.sql"
    # Each kind of warehouse records the checksum of the file it ran.
    assert b.checksum == b.checksum_for(lake=False) != b.checksum_for(lake=True)
    assert found[0].checksum_for(lake=True) == found[0].checksum


@pytest.mark.parametrize(
    "names",
    [
        ("0001_a.sql", "0002_b.lake.sql"),  # orphan: no plain 0002
        ("0001_a.sql", "0001_other.lake.sql"),  # the variant's name differs
        ("0001_a.sql", "0001_b.sql"),  # two plain files, one version
        ("0001_a.sql", "0001_a.lake.sql", "0001_b.lake.sql"),  # two variants, one version
        ("0001_a.sql", "0001_a.duck.sql"),  # not a migration name
        ("1_a.sql",),
    ],
)
def test_bad_sets_are_refused(tmp_path: Path, names: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        discover(_files(tmp_path, *names))


def test_the_project_migrations_pair_up() -> None:
    for directory in (WAREHOUSE_MIGRATIONS, KPI_MIGRATIONS):
        found = discover(directory)
        assert len(found) == len([p for p in directory.glob("*.sql") if ".lake." not in p.name])
        variants = {m.lake_path.name for m in found if m.lake_path is not None}
        assert variants == {p.name for p in directory.glob("*.lake.sql")}
