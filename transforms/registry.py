"""The KPI registry: one compute function per feed, all with one signature, run in this order."""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol

import duckdb

from common.settings import Settings
from transforms.air import compute_air_range
from transforms.traffic import compute_traffic_range
from transforms.water import compute_water_range
from transforms.waterlogging import compute_waterlogging_range


class ComputeRange(Protocol):
    """(Re)build a feed's KPI rows for the natural days start..end (idempotent).

    ``settings`` gives the time zone and the reference folder (default: from the environment);
    ``as_of`` decides provisional/final where a feed's rows carry a status; ``extend`` rebuilds
    period rows up to the last computed day of ``end``'s year; ``prepared`` says the caller ran
    ``prepare()`` in this run (a KPI run loads the reference tables once, not once per feed).
    """

    def __call__(
        self,
        con: duckdb.DuckDBPyConnection,
        start: date,
        end: date,
        *,
        settings: Settings | None = None,
        as_of: datetime | None = None,
        extend: bool = True,
        prepared: bool = False,
    ) -> None: ...


KPIS: dict[str, ComputeRange] = {
    "air": compute_air_range,
    "water": compute_water_range,
    "waterlogging": compute_waterlogging_range,
    "traffic": compute_traffic_range,
}
