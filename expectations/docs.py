"""GX Data Docs: a FILE context under ``settings.gx_dir`` holding the suites and a trimmed copy
of every validation result (per-row lists removed; they live in dq.flagged_readings).

Validation itself runs in an in-memory context (fast, nothing on disk); this module only keeps
what staff browse. ``store_result`` marks a result as pending; ``build`` renders the site and
returns the local index path plus each pending result's page path.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from expectations.validate import quiet_gx

log = logging.getLogger(__name__)


def file_context(gx_dir: Path) -> Any:
    quiet_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    gx_dir.mkdir(parents=True, exist_ok=True)
    ctx = gx.get_context(mode="file", project_root_dir=str(gx_dir))
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return ctx


def _pending_dir(gx_dir: Path) -> Path:
    return gx_dir / "pending_docs"


def store_result(gx_dir: Path, validation: Any) -> list[Any]:
    """Store the (already trimmed) GX result of ``validation`` and mark it for the next build."""
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    from expectations.suites import build_suite

    ctx = file_context(gx_dir)
    # The suite too, so the site shows each expectation with its bound and source.
    ctx.suites.add_or_update(
        build_suite(validation.feed, validation.specs, validation.suite_version)
    )
    res = validation.gx_result
    suite_id = ExpectationSuiteIdentifier(name=validation.suite_name)
    run_id = RunIdentifier(run_name=validation.validation_run_id, run_time=validation.started_at)
    key = ValidationResultIdentifier(
        expectation_suite_identifier=suite_id,
        run_id=run_id,
        batch_identifier=validation.feed,
    )
    ctx.validation_results_store.set(key, res)
    pending = _pending_dir(gx_dir)
    pending.mkdir(parents=True, exist_ok=True)
    ident = list(key.to_tuple())
    (pending / f"{validation.validation_run_id}.json").write_text(
        json.dumps(ident), encoding="utf-8"
    )
    return ident


def build(gx_dir: Path) -> tuple[str | None, dict[str, str]]:
    """Render Data Docs; return (local index.html path, {validation_run_id: page path})."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    pending = _pending_dir(gx_dir)
    markers = sorted(pending.glob("*.json")) if pending.exists() else []
    ctx = file_context(gx_dir)
    ids = {
        m.stem: ValidationResultIdentifier.from_tuple(tuple(json.loads(m.read_text("utf-8"))))
        for m in markers
    }
    suite_ids = [ExpectationSuiteIdentifier(name=s.name) for s in ctx.suites.all()]
    sites = ctx.build_data_docs(resource_identifiers=[*suite_ids, *ids.values()])
    index = next(iter(sites.values()), None)
    pages: dict[str, str] = {}
    for vrid, key in ids.items():
        urls = ctx.get_docs_sites_urls(resource_identifier=key)
        if urls:
            pages[vrid] = _local(urls[0]["site_url"])
    for m in markers:
        m.unlink(missing_ok=True)
    return (_local(index) if index else None), pages


def _local(url: str) -> str:
    return url.removeprefix("file://")
