"""Record task failures of the DAGs where operators look: the log and a status file."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from common.settings import Settings

log = logging.getLogger(__name__)


def record_task_failure(context: Any, settings: Settings | None = None) -> None:
    """Airflow ``on_failure_callback``: log and append one JSON line to status/dag_failures.jsonl.

    ``settings`` defaults to the environment's, read when a failure happens (never at import).
    A callback must never raise (it would hide the original failure), hence the broad except.
    """
    try:
        ti = context.get("task_instance") or context.get("ti")
        entry = {
            "at": datetime.now(UTC).isoformat(),
            "dag_id": getattr(ti, "dag_id", None) or str(context.get("dag")),
            "task_id": getattr(ti, "task_id", None),
            "run_id": str(context.get("run_id")),
            "try_number": getattr(ti, "try_number", None),
            "exception": repr(context.get("exception")),
        }
        log.error("citypipe task failed: %s", entry)
        if settings is None:
            from common.settings import get_settings

            settings = get_settings()
        status = settings.status_dir
        status.mkdir(parents=True, exist_ok=True)
        with open(status / "dag_failures.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
    except Exception:
        log.exception("could not record the task failure")
