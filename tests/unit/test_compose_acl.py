"""The broker ACL generator (citypipe/broker_acl.py): the shipped deploy/mosquitto/acl is the
Wushan catalogue's, each site gets exactly its own topic, and a second city's ACL comes from its
catalogue folder alone (docs/operations.md, onboarding a city)."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from citypipe.broker_acl import (
    ALERTS_ACCOUNT,
    INGEST_ACCOUNT,
    SERVICE_ACCOUNTS,
    SERVING_ACCOUNT,
    add_sensor_passwords,
    render_acl,
)
from citypipe.cli import build_parser
from common.catalogue import FEEDS, Catalogue, load_catalogue_from
from common.settings import REPO_ROOT, get_settings

WUSHAN = REPO_ROOT / "reference" / "sites" / "wushan"


def grants(acl: str) -> dict[str, list[str]]:
    """user -> its `topic` lines, as Mosquitto reads them (anything before a user: key '')."""
    out: dict[str, list[str]] = {"": []}
    user = ""
    for line in acl.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user":
            user = words[1]
            assert user not in out, f"user {user} appears twice"
            out[user] = []
        else:
            assert words[0] == "topic", f"unexpected ACL line {line!r} (no pattern lines)"
            out[user].append(" ".join(words[1:]))
    return out


def test_the_shipped_acl_is_the_wushan_catalogues(catalogue: Catalogue) -> None:
    shipped = (REPO_ROOT / "deploy" / "mosquitto" / "acl").read_text(encoding="utf-8")
    assert shipped == render_acl(catalogue, "reference/sites/wushan"), (
        "deploy/mosquitto/acl is stale: citypipe broker-acl --output deploy/mosquitto/acl"
    )


def test_each_site_publishes_to_its_own_topic_only(catalogue: Catalogue) -> None:
    acl = grants(render_acl(catalogue, "x"))
    assert acl.pop("") == [], "grants before the first user line would apply to anonymous"
    for site in catalogue.sites.values():
        assert acl.pop(site.site_id) == [f"write city/wushan/{site.feed}/{site.site_id}"]
    sensors_read = [f"read city/wushan/{feed}/+" for feed in FEEDS]
    assert acl.pop(INGEST_ACCOUNT) == sensors_read
    assert acl.pop(ALERTS_ACCOUNT) == [*sensors_read, "write city/wushan/alert/#"]
    assert acl.pop(SERVING_ACCOUNT) == ["readwrite city/wushan/kpi/#"]
    assert set(acl) == set(SERVICE_ACCOUNTS) - {INGEST_ACCOUNT, ALERTS_ACCOUNT, SERVING_ACCOUNT}
    assert all(
        not line.startswith(("write", "readwrite")) for lines in acl.values() for line in lines
    )


def main(argv: list[str]) -> int:
    """The command as `citypipe` runs it, minus cli.main's umask and data-folder policy."""
    args = build_parser(("citypipe.broker_acl",)).parse_args(argv)
    return int(args.func(args, get_settings()))


def second_city(tmp_path: Path) -> Path:
    """A tiny catalogue of another county: two sites, its own manifest, nothing else."""
    folder = tmp_path / "sites" / "fengjie"
    folder.mkdir(parents=True)
    (folder / "manifest.toml").write_text(
        'city_id = "fengjie"\nname_en = "Fengjie County"\nname_zh = "奉节县"\n'
        'timezone = "Asia/Shanghai"\nvalid_from = "2027-01-01"\nsource = "test"\n'
        '[files]\nair = ["air_stations.csv"]\nwaterlogging = ["waterlogging_points.csv"]\n',
        encoding="utf-8",
    )
    for name in ("air_stations.csv", "waterlogging_points.csv"):
        header, first = (WUSHAN / name).read_text(encoding="utf-8").splitlines()[:2]
        row = first.replace("WS-", "FJ-", 1)
        (folder / name).write_text(f"{header}\n{row}\n", encoding="utf-8")
    return folder


def test_a_second_city_gets_its_acl_from_its_catalogue_alone(tmp_path: Path) -> None:
    folder = second_city(tmp_path)
    catalogue = load_catalogue_from(folder)
    acl = grants(render_acl(catalogue, str(folder)))
    assert acl["FJ-AIR-01"] == ["write city/fengjie/air/FJ-AIR-01"]
    assert acl["FJ-WLG-01"] == ["write city/fengjie/waterlogging/FJ-WLG-01"]
    assert acl[SERVING_ACCOUNT] == ["readwrite city/fengjie/kpi/#"]
    assert not any("wushan" in line for lines in acl.values() for line in lines)


def test_the_command_writes_checks_and_creates_sensor_passwords(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = second_city(tmp_path)
    out = tmp_path / "acl"
    accounts = tmp_path / "mqtt_sensor_accounts"
    accounts.write_text("FJ-AIR-01:kept-as-it-is\n", encoding="utf-8")
    args = ["broker-acl", "--catalogue", str(folder), "--output", str(out)]
    assert main([*args, "--sensor-accounts", str(accounts)]) == 0
    assert out.read_text(encoding="utf-8") == render_acl(load_catalogue_from(folder), str(folder))
    assert main([*args, "--check"]) == 0
    out.write_text(out.read_text(encoding="utf-8") + "user intruder\ntopic write #\n")
    assert main([*args, "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    lines = accounts.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "FJ-AIR-01:kept-as-it-is"
    users = [line.split(":", 1) for line in lines]
    assert [u for u, _ in users] == ["FJ-AIR-01", "FJ-WLG-01"]
    assert len(users[1][1]) >= 32, "a generated password is long and random"
    assert stat.S_IMODE(accounts.stat().st_mode) == 0o600
    assert add_sensor_passwords(accounts, load_catalogue_from(folder)) == []


def test_a_site_id_that_cannot_be_a_user_name_is_refused(tmp_path: Path) -> None:
    folder = second_city(tmp_path)
    csv = folder / "air_stations.csv"
    csv.write_text(csv.read_text(encoding="utf-8").replace("FJ-AIR-01", "FJ AIR/01"))
    with pytest.raises(ValueError, match="cannot be an MQTT user name"):
        render_acl(load_catalogue_from(folder), "x")
    csv.write_text(csv.read_text(encoding="utf-8").replace("FJ AIR/01", INGEST_ACCOUNT))
    with pytest.raises(ValueError, match="collides with a service account"):
        render_acl(load_catalogue_from(folder), "x")
    shutil.rmtree(folder)
