"""`citypipe up --executor celery`'s configuration: the metadata database's name and URL and the
broker's URL, built from the settings with passwords only from them (and hidden when shown)."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from citypipe.up import airflow_database_name, airflow_database_url, celery_broker_url
from common.settings import get_settings


def test_each_data_folder_gets_a_database_of_its_own(tmp_path: Path) -> None:
    a = get_settings(home=tmp_path / "a")
    b = get_settings(home=tmp_path / "b")
    assert airflow_database_name(a) == airflow_database_name(get_settings(home=tmp_path / "a"))
    assert airflow_database_name(a) != airflow_database_name(b)
    assert airflow_database_name(a).startswith("citypipe_airflow_")
    assert airflow_database_name(get_settings(home=tmp_path, airflow_database="af")) == "af"


def test_the_metadata_url_takes_the_password_from_the_settings_and_hides_it(
    tmp_path: Path,
) -> None:
    plain = get_settings(home=tmp_path, airflow_postgres_url="postgresql+psycopg://af@db:5432")
    assert airflow_database_url(plain, "x") == "postgresql+psycopg://af@db:5432/x"
    secret = tmp_path / "pw"
    secret.write_text("s3cr/t@\n", encoding="utf-8")
    with_pw = get_settings(
        home=tmp_path,
        airflow_postgres_url="postgresql+psycopg://af@db:5432",
        airflow_postgres_password_file=secret,
    )
    assert airflow_database_url(with_pw, "x") == "postgresql+psycopg://af:s3cr%2Ft%40@db:5432/x"
    assert "s3cr" not in airflow_database_url(with_pw, "x", hide_password=True)


def test_the_broker_url_takes_the_password_from_the_settings_and_hides_it(
    tmp_path: Path,
) -> None:
    plain = get_settings(home=tmp_path)
    assert celery_broker_url(plain) == "redis://127.0.0.1:6379/0"
    with_pw = get_settings(
        home=tmp_path,
        celery_broker_url="redis://redis:6380/2",
        celery_broker_password=SecretStr("pw/1@"),
    )
    assert celery_broker_url(with_pw) == "redis://:pw%2F1%40@redis:6380/2"
    assert celery_broker_url(with_pw, hide_password=True) == "redis://:***@redis:6380/2"
