"""The Wushan site catalogue meets the counts and rules the plan and standards ask for."""

from __future__ import annotations

from common.catalogue import Catalogue


def test_air_assessment_and_micro(catalogue: Catalogue) -> None:
    air = catalogue.by_feed("air")
    assessment = [s for s in air if s.get("is_assessment")]
    micro = [s for s in air if s.get("station_type") == "micro"]
    assert len(assessment) >= 4
    assert len(micro) >= 6
    # Micro-stations never enter the official county value.
    assert not any(s.get("is_assessment") for s in micro)


def test_water_sections_and_sources(catalogue: Catalogue) -> None:
    sections = catalogue.by_kind("water_section")
    assert len(sections) == 16
    assert sum(1 for s in sections if s.get("is_mainstream")) == 1
    assert {s.get("water_body_type") for s in sections} == {"river", "lake_reservoir"}
    assert all(s.get("target_class") == "II" for s in sections)
    assert len(catalogue.by_kind("drinking_water_source")) == 34


def test_waterlogging_points(catalogue: Catalogue) -> None:
    points = catalogue.by_feed("waterlogging")
    assert len(points) >= 20
    assert any(s.get("cluster") == "gaotang" for s in points)
    for p in points:
        assert p.get("waterlogging_cm") < p.get("closure_cm") < p.get("danger_cm")


def test_traffic_detectors(catalogue: Catalogue) -> None:
    det = catalogue.by_feed("traffic")
    assert len(det) >= 30
    for d in det:
        assert d.get("road_class") in {"expressway", "arterial", "secondary", "branch"}
        assert d.get("segment_length_km") > 0 and d.get("free_flow_kmh") > 0 and d.get("lanes") >= 1
    assert any(d.get("is_old_town") for d in det)


def test_site_ids_unique_and_feed_prefixed(catalogue: Catalogue) -> None:
    prefixes = {
        "air": "WS-AIR-",
        "water": ("WS-WAT-", "WS-DWS-"),
        "waterlogging": "WS-WLG-",
        "traffic": "WS-TRF-",
    }
    for site in catalogue.sites.values():
        assert site.site_id.startswith(prefixes[site.feed])
