"""The site catalogue: version-controlled CSV files under reference/sites/{city}/.

One ``Site`` per monitoring site; feed-specific columns stay in ``attrs`` as typed values.
"""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path

FEEDS = ("air", "water", "waterlogging", "traffic")

# Which CSV file a site came from decides its kind (one feed may have several kinds).
KIND_BY_FILE = {
    "air_stations.csv": "air_station",
    "water_sections.csv": "water_section",
    "drinking_water_sources.csv": "drinking_water_source",
    "waterlogging_points.csv": "waterlogging_point",
    "traffic_detectors.csv": "traffic_detector",
}

_INT_COLS = {"period_s", "lanes", "waterlogging_cm", "closure_cm", "danger_cm"}
_FLOAT_COLS = {"lat", "lon", "segment_length_km", "free_flow_kmh"}
_BOOL_COLS = {"is_assessment", "is_mainstream", "is_old_town"}
_BASE_COLS = {"site_id", "name_en", "name_zh", "lat", "lon", "period_s", "device_ids", "valid_from"}


@dataclass(frozen=True)
class Site:
    site_id: str
    feed: str
    kind: str
    name_en: str
    name_zh: str
    lat: float
    lon: float
    period_s: int
    device_ids: tuple[str, ...]
    valid_from: date
    attrs: dict[str, object] = field(default_factory=dict, hash=False, compare=False)

    def get(self, key: str, default: object = None) -> object:
        return self.attrs.get(key, default)

    @property
    def district(self) -> str | None:
        d = self.attrs.get("district") or self.attrs.get("town")
        return str(d) if d is not None else None

    @property
    def lanes(self) -> int:
        """Lanes of a traffic detector site (1 when the catalogue gives none)."""
        n = self.attrs.get("lanes")
        return n if isinstance(n, int) and n > 0 else 1


@dataclass(frozen=True)
class Catalogue:
    city_id: str
    timezone: str
    valid_from: date
    source: str
    sites: dict[str, Site]

    def by_feed(self, feed: str) -> list[Site]:
        return [s for s in self.sites.values() if s.feed == feed]

    def by_kind(self, kind: str) -> list[Site]:
        return [s for s in self.sites.values() if s.kind == kind]

    def __contains__(self, site_id: object) -> bool:
        return site_id in self.sites


def _convert(col: str, raw: str) -> object:
    if raw == "":
        return None
    if col in _INT_COLS:
        return int(raw)
    if col in _FLOAT_COLS:
        return float(raw)
    if col in _BOOL_COLS:
        if raw not in ("true", "false"):
            raise ValueError(f"{col}: expected true/false, got {raw!r}")
        return raw == "true"
    return raw


def load_catalogue_from(directory: Path) -> Catalogue:
    manifest = tomllib.loads((directory / "manifest.toml").read_text(encoding="utf-8"))
    sites: dict[str, Site] = {}
    for feed, files in manifest["files"].items():
        if feed not in FEEDS:
            raise ValueError(f"{directory}: unknown feed {feed!r} in manifest")
        for name in files:
            with open(directory / name, newline="", encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    sid = row["site_id"]
                    if sid in sites:
                        raise ValueError(f"{directory / name}: duplicate site_id {sid}")
                    attrs = {k: _convert(k, v) for k, v in row.items() if k not in _BASE_COLS}
                    sites[sid] = Site(
                        site_id=sid,
                        feed=feed,
                        kind=KIND_BY_FILE.get(name, feed),
                        name_en=row["name_en"],
                        name_zh=row["name_zh"],
                        lat=float(row["lat"]),
                        lon=float(row["lon"]),
                        period_s=int(row["period_s"]),
                        device_ids=tuple(row["device_ids"].split("|")),
                        valid_from=date.fromisoformat(row["valid_from"]),
                        attrs=attrs,
                    )
    return Catalogue(
        city_id=manifest["city_id"],
        timezone=manifest["timezone"],
        valid_from=date.fromisoformat(str(manifest["valid_from"])),
        source=manifest["source"],
        sites=sites,
    )


@lru_cache(maxsize=8)
def load_catalogue(reference_dir: Path, city: str) -> Catalogue:
    """Load (and cache) the catalogue of ``city`` from ``reference_dir/sites/city``."""
    return load_catalogue_from(Path(reference_dir) / "sites" / city)
