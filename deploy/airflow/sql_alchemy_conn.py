"""Print Airflow's metadata database URL with the password read from its secret file.

Airflow reads it through AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD (docker-compose.yml), so the
password lives only in the secret file, and any character in it is URL-quoted here.
Environment: AIRFLOW_DB_PASSWORD_FILE (required), AIRFLOW_DB_USER, AIRFLOW_DB_HOST, AIRFLOW_DB_NAME.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import quote


def main() -> int:
    secret = os.environ.get("AIRFLOW_DB_PASSWORD_FILE")
    if not secret:
        print("AIRFLOW_DB_PASSWORD_FILE is not set (no default password)", file=sys.stderr)
        return 2
    password = Path(secret).read_text(encoding="utf-8").strip()
    user = os.environ.get("AIRFLOW_DB_USER", "airflow")
    host = os.environ.get("AIRFLOW_DB_HOST", "postgres:5432")
    name = os.environ.get("AIRFLOW_DB_NAME", "airflow")
    # psycopg 3: one driver for Airflow's sync and async engines. No newline: Airflow takes a
    # *_CMD's output as it is (a trailing newline became part of the database name).
    url = f"postgresql+psycopg://{quote(user, safe='')}:{quote(password, safe='')}@{host}/{name}"
    sys.stdout.write(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
