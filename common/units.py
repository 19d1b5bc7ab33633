"""Units of the feed contract v1: the canonical unit of every value field and its allowed alternatives.

Source: docs/feeds.md ("Values and units"), contract v1, valid from 2026-01-01. This is reference
data, kept in one table so the parser, the simulator, the docs and the JSON Schemas agree.

``UNITS[feed][field]`` maps every accepted unit name to the factor that converts a value in that
unit into the canonical unit (the canonical name itself maps to 1.0). A few common spellings of
the same unit (``µg/m3``, ``mg/l``) are accepted as aliases; anything else is ``unknown_unit``.
"""

from __future__ import annotations

SOURCE = "docs/feeds.md, MQTT feed contract v1"
VALID_FROM = "2026-01-01"

# Spelling aliases of canonical units (same factor as the canonical name).
_UGM3 = {"ug/m3": 1.0, "µg/m3": 1.0, "μg/m3": 1.0, "µg/m³": 1.0, "ug/m³": 1.0}
_MGM3_AS_CANONICAL = {"mg/m3": 1.0, "mg/m³": 1.0}
_MGL = {"mg/L": 1.0, "mg/l": 1.0}


def _pollutant() -> dict[str, float]:
    # µg/m³ canonical; mg/m³ accepted (×1000).
    return {**_UGM3, "mg/m3": 1000.0, "mg/m³": 1000.0}


# feed -> field -> {unit name: factor to canonical}
UNITS: dict[str, dict[str, dict[str, float]]] = {
    "air": {
        "pm25": _pollutant(),
        "pm10": _pollutant(),
        "so2": _pollutant(),
        "no2": _pollutant(),
        "o3": _pollutant(),
        # CO is the exception: canonical mg/m³, µg/m³ accepted (÷1000).
        "co": {**_MGM3_AS_CANONICAL, **{k: 0.001 for k in _UGM3}},
        "temp_c": {"degC": 1.0, "°C": 1.0},
        "rh_pct": {"%": 1.0},
        "wind_ms": {"m/s": 1.0},
        "wind_deg": {"deg": 1.0, "°": 1.0},
        "pressure_hpa": {"hPa": 1.0},
    },
    "water": {
        "water_temp_c": {"degC": 1.0, "°C": 1.0},
        "ph": {"pH": 1.0},
        "do": dict(_MGL),
        "codmn": dict(_MGL),
        "nh3n": dict(_MGL),
        "tp": dict(_MGL),
        "tn": dict(_MGL),
        "conductivity": {"uS/cm": 1.0, "µS/cm": 1.0, "μS/cm": 1.0, "mS/cm": 1000.0},
        "turbidity": {"NTU": 1.0},
    },
    "waterlogging": {
        "depth_cm": {"cm": 1.0, "m": 100.0, "mm": 0.1},
        "rain_mm": {"mm": 1.0},
    },
    "traffic": {
        "volume": {"veh": 1.0, "vehicles": 1.0},
        "speed_kmh": {"km/h": 1.0, "m/s": 3.6},
        "occupancy_pct": {"%": 1.0, "fraction": 100.0},
    },
}

# The canonical unit name of each field (the first key whose factor is 1.0).
CANONICAL: dict[str, dict[str, str]] = {
    feed: {f: next(u for u, k in units.items() if k == 1.0) for f, units in fields.items()}
    for feed, fields in UNITS.items()
}

# Non-canonical alternatives the contract names explicitly (what docs and the simulator use).
ALTERNATIVES: dict[str, dict[str, dict[str, float]]] = {
    "air": {p: {"mg/m3": 1000.0} for p in ("pm25", "pm10", "so2", "no2", "o3")}
    | {"co": {"ug/m3": 0.001}},
    "water": {"conductivity": {"mS/cm": 1000.0}},
    "waterlogging": {"depth_cm": {"m": 100.0, "mm": 0.1}},
    "traffic": {"speed_kmh": {"m/s": 3.6}, "occupancy_pct": {"fraction": 100.0}},
}


def to_canonical(feed: str, field: str, value: float, unit: str) -> float:
    """Convert ``value`` given in ``unit`` to the canonical unit of ``feed.field``.

    Raises KeyError for an unknown feed, field or unit.
    """
    factor = UNITS[feed][field][unit]
    return value if factor == 1.0 else _tidy(value * factor)


def from_canonical(feed: str, field: str, value: float, unit: str) -> float:
    """Express a canonical ``value`` in ``unit`` (the simulator's unit variants)."""
    factor = UNITS[feed][field][unit]
    # Full precision here: to_canonical's tidy-up then recovers the canonical value exactly.
    return value if factor == 1.0 else value / factor


def _tidy(x: float) -> float:
    # 0.035 mg/m3 * 1000 is 35.00000000000001 in binary floating point; 12 significant digits
    # is far beyond any sensor's precision and makes unit variants equal to the canonical value.
    return float(f"{x:.12g}")
