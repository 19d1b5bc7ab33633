"""Print Celery's Redis broker URL with the password read from its secret file.

Airflow reads it through AIRFLOW__CELERY__BROKER_URL_CMD (docker-compose.yml, the celery
profile), so the password lives only in the secret file. Environment: CELERY_BROKER_PASSWORD_FILE
(required), CELERY_BROKER_HOST (default redis:6379), CELERY_BROKER_DB (default 0).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import quote


def main() -> int:
    secret = os.environ.get("CELERY_BROKER_PASSWORD_FILE")
    if not secret:
        print("CELERY_BROKER_PASSWORD_FILE is not set (no default password)", file=sys.stderr)
        return 2
    password = Path(secret).read_text(encoding="utf-8").strip()
    host = os.environ.get("CELERY_BROKER_HOST", "redis:6379")
    db = os.environ.get("CELERY_BROKER_DB", "0")
    # No newline: Airflow takes a *_CMD's output as it is.
    sys.stdout.write(f"redis://:{quote(password, safe='')}@{host}/{db}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
