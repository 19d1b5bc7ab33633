"""``citypipe serve``: the read-only HTTP API on uvicorn (docs/serving.md)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from common.settings import Settings

log = logging.getLogger(__name__)

# Exit status when the API cannot start (no keys configured).
EXIT_CONFIG = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="serve the read-only HTTP API (KPIs, station values, data quality, alerts)",
        description=(
            "Serve the read-only API under /api/v1 (OpenAPI at /openapi.json and /docs). Needs"
            " CITYPIPE_API_KEYS or CITYPIPE_API_KEYS_FILE; every path but /health asks for a key."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    p.add_argument(
        "--threads",
        type=int,
        default=8,
        # Each DuckDB query runs on several threads itself: more requests at once than a few
        # per core only add contention (bench_serve: 8 beat 40 on 2 cores).
        help="requests that read the database at once (default 8)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from serving.app import create_app
    from serving.keys import NoApiKeys

    try:
        app = create_app(settings, threads=args.threads)
    except NoApiKeys as exc:
        log.error("citypipe serve: %s", exc)
        return EXIT_CONFIG
    log.info(
        "serving %s on http://%s:%d (API at /api/v1, docs at /docs)",
        settings.warehouse_target.describe(),
        args.host,
        args.port,
    )
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level="warning", **uvicorn_options(settings)
    )
    uvicorn.Server(config).run()
    return 0


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn options beyond its defaults, for `citypipe serve` and the demo.

    - X-Forwarded-* only from the proxies the settings name: uvicorn's default trusts
      127.0.0.1, so any local process could choose its client address and slip the per-address
      rate limit; here nobody is trusted unless configured.
    - Idle keep-alive connections live 75 s, not uvicorn's 5 s: clients keep idle connections
      5 s too (httpx's default), and when both expire together a request sent on a connection
      the server is closing fails ("Server disconnected"; 1 read in ~27,000 in
      tests/reliability/test_rel_readers.py at full size).
    """
    trusted = settings.serve_forwarded_allow_ips.strip()
    proxy: dict[str, Any] = (
        {"proxy_headers": True, "forwarded_allow_ips": trusted}
        if trusted
        else {"proxy_headers": False}
    )
    return {**proxy, "timeout_keep_alive": 75}
