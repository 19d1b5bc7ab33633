"""Ingest accounting: per-feed record counters, message counters, the status file and /metrics.

The unit is the record (see ``ingestion.contract``). For every feed, at every snapshot:

    received = accepted + quarantined + duplicates

``revisions`` is a subset of ``accepted`` (same natural key, new content). Records are counted when
the writer flushes them, so the invariant holds at every snapshot; messages still queued are shown
as ``messages_pending``. Counters are per run (they restart at zero with the process); the status
file carries ``run_started_at`` and the landing files themselves are the cumulative record.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

UNKNOWN_FEED = "unknown"


@dataclass
class FeedCounters:
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    revisions: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())

    def balanced(self) -> bool:
        return self.received == self.accepted + self.quarantined_total + self.duplicates

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "quarantined": self.quarantined_total,
            "quarantined_by_reason": dict(sorted(self.quarantined.items())),
            "duplicates": self.duplicates,
            "revisions": self.revisions,
        }


class IngestMetrics:
    """Thread-safe counters; the service updates them, the status/metrics readers snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.run_started_at = datetime.now(UTC)
        self.feeds: dict[str, FeedCounters] = {}
        self.messages_received = 0
        self.messages_acked = 0
        # Received but not acknowledged because the connection they came on was lost; the broker
        # redelivers them and they are then recognised as duplicates.
        self.messages_unacked_stale = 0
        self.files_written = 0
        self.flushes = 0
        self.flush_seconds_total = 0.0
        self.flush_seconds_max = 0.0
        self.flush_seconds_last = 0.0
        self.connects = 0
        self.disconnects = 0
        self.connected = False
        self.protocol = ""
        self.messages_pending = 0  # gauge, set by the service
        self.first_message_at: datetime | None = None
        self.last_message_at: datetime | None = None
        self.last_ack_at: datetime | None = None
        self.invariant_violations = 0

    def feed(self, name: str | None) -> FeedCounters:
        key = name or UNKNOWN_FEED
        c = self.feeds.get(key)
        if c is None:
            c = self.feeds[key] = FeedCounters()
        return c

    def messages_received_add(self, n: int, first: datetime, last: datetime) -> None:
        """Count ``n`` messages received between ``first`` and ``last`` (one lock per batch)."""
        with self._lock:
            self.messages_received += n
            if self.first_message_at is None:
                self.first_message_at = first
            self.last_message_at = last

    def add_flush(
        self,
        per_feed: dict[str, FeedCounters],
        *,
        files: int,
        acked: int,
        stale: int,
        seconds: float,
    ) -> bool:
        """Fold one flush's counts in; return False (and log loudly) if the invariant broke."""
        with self._lock:
            for name, d in per_feed.items():
                c = self.feed(name)
                c.received += d.received
                c.accepted += d.accepted
                c.duplicates += d.duplicates
                c.revisions += d.revisions
                c.quarantined.update(d.quarantined)
            self.files_written += files
            self.messages_acked += acked
            if acked:
                self.last_ack_at = datetime.now(UTC)
            self.messages_unacked_stale += stale
            self.flushes += 1
            self.flush_seconds_total += seconds
            self.flush_seconds_last = seconds
            self.flush_seconds_max = max(self.flush_seconds_max, seconds)
            bad = [n for n, c in self.feeds.items() if not c.balanced()]
            if bad:
                self.invariant_violations += 1
        if bad:
            log.error(
                "ACCOUNTING INVARIANT VIOLATED (received != accepted + quarantined + duplicates) "
                "for feed(s) %s: %s",
                bad,
                {n: self.feeds[n].as_dict() for n in bad},
            )
            return False
        return True

    def set_connection(self, connected: bool, protocol: str = "") -> None:
        with self._lock:
            if connected and not self.connected:
                self.connects += 1
            elif not connected and self.connected:
                self.disconnects += 1
            self.connected = connected
            if protocol:
                self.protocol = protocol

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            feeds = {n: c.as_dict() for n, c in sorted(self.feeds.items())}
            totals = FeedCounters()
            for c in self.feeds.values():
                totals.received += c.received
                totals.accepted += c.accepted
                totals.duplicates += c.duplicates
                totals.revisions += c.revisions
                totals.quarantined.update(c.quarantined)
            return {
                "service": "citypipe-ingest",
                "pid": os.getpid(),
                "run_started_at": self.run_started_at.isoformat(),
                "updated_at": datetime.now(UTC).isoformat(),
                "counters_scope": "this run (since run_started_at)",
                "connected": self.connected,
                "protocol": self.protocol,
                "connects": self.connects,
                "disconnects": self.disconnects,
                "first_message_at": _iso(self.first_message_at),
                "last_message_at": _iso(self.last_message_at),
                "last_ack_at": _iso(self.last_ack_at),
                "messages": {
                    "received": self.messages_received,
                    "acked": self.messages_acked,
                    "unacked_stale": self.messages_unacked_stale,
                    "pending": self.messages_pending,
                },
                "records": totals.as_dict(),
                "feeds": feeds,
                "invariant_ok": all(c.balanced() for c in self.feeds.values()),
                "invariant_violations": self.invariant_violations,
                "files_written": self.files_written,
                "flushes": self.flushes,
                "flush_seconds": {
                    "last": round(self.flush_seconds_last, 6),
                    "max": round(self.flush_seconds_max, 6),
                    "mean": round(self.flush_seconds_total / self.flushes, 6)
                    if self.flushes
                    else 0.0,
                },
            }

    def log_summary(self) -> None:
        s = self.snapshot()
        r = s["records"]
        log.info(
            "ingest: messages received=%d acked=%d pending=%d | records received=%d accepted=%d "
            "quarantined=%d duplicates=%d revisions=%d | files=%d",
            s["messages"]["received"],
            s["messages"]["acked"],
            s["messages"]["pending"],
            r["received"],
            r["accepted"],
            r["quarantined"],
            r["duplicates"],
            r["revisions"],
            s["files_written"],
        )

    def prometheus(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        s = self.snapshot()
        out: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(f"{name}{labels} {value}" for labels, value in samples)

        for key, help_ in (
            ("received", "Records received (a batch message counts each reading)."),
            ("accepted", "Records landed (new or revised readings)."),
            ("duplicates", "Exact re-deliveries recognised and not stored again."),
            ("revisions", "Accepted readings replacing an earlier one with the same natural key."),
        ):
            metric(
                f"citypipe_ingest_records_{key}_total",
                "counter",
                help_,
                [(f'{{feed="{f}"}}', c[key]) for f, c in s["feeds"].items()],
            )
        metric(
            "citypipe_ingest_records_quarantined_total",
            "counter",
            "Records stored in quarantine, by reason.",
            [
                (f'{{feed="{f}",reason="{r}"}}', n)
                for f, c in s["feeds"].items()
                for r, n in c["quarantined_by_reason"].items()
            ],
        )
        m = s["messages"]
        metric("citypipe_ingest_messages_received_total", "counter", "MQTT messages received.",
               [("", m["received"])])  # fmt: skip
        metric("citypipe_ingest_messages_acked_total", "counter",
               "MQTT messages acknowledged after their records were durable.", [("", m["acked"])])  # fmt: skip
        metric("citypipe_ingest_messages_pending", "gauge",
               "Messages received, not yet flushed and acknowledged.", [("", m["pending"])])  # fmt: skip
        metric("citypipe_ingest_files_written_total", "counter", "Parquet files written.",
               [("", s["files_written"])])  # fmt: skip
        metric("citypipe_ingest_flush_seconds_max", "gauge", "Slowest flush this run.",
               [("", s["flush_seconds"]["max"])])  # fmt: skip
        metric("citypipe_ingest_flush_seconds_last", "gauge", "Duration of the last flush.",
               [("", s["flush_seconds"]["last"])])  # fmt: skip
        metric("citypipe_ingest_connected", "gauge", "1 while connected to the broker.",
               [("", int(s["connected"]))])  # fmt: skip
        metric("citypipe_ingest_invariant_ok", "gauge",
               "1 while received = accepted + quarantined + duplicates for every feed.",
               [("", int(s["invariant_ok"]))])  # fmt: skip
        return "\n".join(out) + "\n"


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None


def write_status(path: Path, snapshot: dict[str, Any]) -> None:
    """Replace the status file atomically (readers never see half a JSON document)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(snapshot, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class MetricsServer:
    """``GET /metrics`` (Prometheus text) and ``GET /status`` (the JSON snapshot) in a thread."""

    def __init__(self, metrics: IngestMetrics, port: int, host: str = "127.0.0.1") -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/metrics":
                    body = metrics.prometheus().encode()
                    ctype = "text/plain; version=0.0.4; charset=utf-8"
                elif self.path.split("?")[0] == "/status":
                    body = json.dumps(metrics.snapshot()).encode()
                    ctype = "application/json"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ingest-metrics", daemon=True
        )

    def start(self) -> MetricsServer:
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics", self._server.server_address[0], self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
