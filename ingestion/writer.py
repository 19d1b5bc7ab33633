"""The landing writer of `citypipe ingest`: parse, dedupe, write durable Parquet, report.

By default it runs in its own process (started by the service, ``main()`` below), so that the contract
parse and the Parquet writes use the second core while the service process does nothing but MQTT:
receive, hand raw messages over, acknowledge. ``worker="thread"`` runs the same loop in a thread
of the service process (one core; simpler to debug).

The service and the writer talk over one socket pair in the messages of ``ingestion.messages``
(``Handover`` batches in, ``Durable`` reports out).

The writer dies with the service: on Linux it asks the kernel for SIGKILL when its parent exits
(``PR_SET_PDEATHSIG``), elsewhere it stops at end-of-file on the socket. A killed writer may leave
a temp file (deleted at the next start) or a complete file whose messages were never acked (the
broker redelivers them; the dedupe index recognises them). It holds an exclusive ``flock`` on
``{status_dir}/.ingest-{client id}.lock`` while it runs, so a restarted service never loads its
dedupe index while a previous writer could still be renaming a file into place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

from ingestion.dedupe import QUARANTINE, DedupeIndex, Verdict, quarantine_digest, reading_digests
from ingestion.landing import (
    landing_partition,
    landing_table,
    quarantine_partition,
    quarantine_table,
    remove_stale_temp_files,
    write_table_atomic,
)
from ingestion.messages import (
    Bye,
    Configure,
    Durable,
    Failed,
    Handover,
    Ready,
    Stop,
    ToWriter,
    WriterConfig,
)
from ingestion.metrics import FeedCounters

if TYPE_CHECKING:
    from pathlib import Path

    from common.settings import Settings
    from ingestion.contract import ContractParser, ParsedMessage

log = logging.getLogger(__name__)

LOCK_WAIT_LOG_S = 10.0


@dataclass
class FlushResult:
    counts: dict[str, FeedCounters] = field(default_factory=dict)
    files: int = 0


class LandingWriter:
    """Parse messages and write them durably; only one thread may use an instance."""

    def __init__(
        self,
        settings: Settings,
        *,
        parser: ContractParser | None = None,
        dedupe_max_entries: int = 8_000_000,
    ) -> None:
        if parser is None:
            from ingestion.contract import ContractParser

            parser = ContractParser.from_settings(settings)
        self.parser = parser
        self.owner = settings.client_id  # tags its temp files (several instances, one folder)
        self.landing_dir = settings.landing_dir
        self.quarantine_dir = settings.quarantine_dir
        self.index = DedupeIndex.for_dirs(
            settings.landing_dir, settings.quarantine_dir, max_entries=dedupe_max_entries
        )

    def parse(self, topic: str, payload: bytes | bytearray, received_at: float) -> ParsedMessage:
        return self.parser.parse(topic, payload, datetime.fromtimestamp(received_at, UTC))

    def write(self, messages: list[ParsedMessage]) -> FlushResult:
        """Land every record of ``messages``; durable on return. Raises if a write failed."""
        counts: dict[str, FeedCounters] = defaultdict(FeedCounters)
        readings: dict[tuple[str, date], list[dict[str, object]]] = defaultdict(list)
        rejected: dict[date, list[dict[str, object]]] = defaultdict(list)
        for pm in messages:
            for r in pm.readings:
                readings[(r.feed, r.local_date)].append(r.row)
            for j in pm.rejections:
                rejected[j.row["received_date"]].append(j.row)  # type: ignore[index]
        files = 0

        for (feed, day), rows in readings.items():
            digests = [reading_digests(row) for row in rows]
            keys = [d[0] for d in digests]
            pairs = [d[1] for d in digests]
            verdicts = self.index.classify((feed, day), keys, pairs)
            keep = [i for i, v in enumerate(verdicts) if v != Verdict.DUPLICATE]
            c = counts[feed]
            c.received += len(rows)
            c.accepted += len(keep)
            c.duplicates += len(rows) - len(keep)
            c.revisions += sum(1 for v in verdicts if v == Verdict.REVISION)
            if keep:
                kept = rows if len(keep) == len(rows) else [rows[i] for i in keep]
                write_table_atomic(
                    landing_table(feed, kept),
                    landing_partition(self.landing_dir, feed, day),
                    self.owner,
                )
                files += 1
                self.index.commit((feed, day), [keys[i] for i in keep], [pairs[i] for i in keep])

        for day, rows in rejected.items():
            digests_q = [quarantine_digest(row) for row in rows]
            verdicts = self.index.classify((QUARANTINE, day), digests_q, digests_q)
            keep = [i for i, v in enumerate(verdicts) if v != Verdict.DUPLICATE]
            kept_set = set(keep)
            for i, row in enumerate(rows):
                c = counts[str(row["feed"] or "unknown")]
                c.received += 1
                if i in kept_set:
                    c.quarantined[str(row["reason"])] += 1
                else:
                    c.duplicates += 1
            if keep:
                table = quarantine_table([rows[i] for i in keep])
                write_table_atomic(
                    table, quarantine_partition(self.quarantine_dir, day), self.owner
                )
                files += 1
                kept_digests = [digests_q[i] for i in keep]
                self.index.commit((QUARANTINE, day), kept_digests, kept_digests)
        return FlushResult(dict(counts), files)


def lock_path(settings: Settings) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", settings.client_id)
    return settings.status_dir / f".ingest-{safe}.lock"


def _acquire_lock(path: Path, conn: Connection) -> int | None:
    """Exclusive flock on ``path``; None if the service said stop while we waited."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    waited = 0.0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            pass
        if waited % LOCK_WAIT_LOG_S == 0:
            log.warning("waiting for %s: another ingest writer with this client id runs", path)
        if conn.poll(0.5):
            os.close(fd)
            return None
        waited += 0.5


def serve(conn: Connection, config: WriterConfig) -> int:
    """The writer loop (process or thread). Returns 0 after ``stop``, 1 after a failure."""
    s = config.settings
    lock_fd = _acquire_lock(lock_path(s), conn)
    if lock_fd is None:  # told to stop (or the service died) while waiting
        with contextlib.suppress(OSError):
            conn.send(Bye())
        return 0
    try:
        remove_stale_temp_files(s.landing_dir, s.quarantine_dir, owner=s.client_id)
        writer = LandingWriter(s, dedupe_max_entries=config.dedupe_max_entries)
        landing_table("air", [])  # first Arrow conversion is slow: not while messages wait
        conn.send(Ready())
        return _loop(conn, config, writer)
    finally:
        os.close(lock_fd)


def _partitions(pm: ParsedMessage) -> set[tuple[str, date]]:
    parts = {(r.feed, r.local_date) for r in pm.readings}
    if pm.rejections:
        parts.update(("", j.row["received_date"]) for j in pm.rejections)  # type: ignore[misc]
    return parts


def _loop(conn: Connection, config: WriterConfig, writer: LandingWriter) -> int:
    pending: list[ParsedMessage] = []
    partitions: set[tuple[str, date]] = set()
    n_messages = records = 0
    deadline = 0.0  # flush by then (age of the oldest pending message)
    parse = writer.parse

    def flush() -> bool:
        nonlocal pending, n_messages, records
        t0 = time.perf_counter()
        try:
            result = writer.write(pending)
        except BaseException as exc:
            # Nothing of this flush is reported durable: the broker keeps it for the next run.
            log.exception("landing write failed; nothing of this batch is acknowledged")
            conn.send(Failed(f"{type(exc).__name__}: {exc}"))
            return False
        conn.send(Durable(n_messages, result.counts, result.files, time.perf_counter() - t0))
        pending = []
        partitions.clear()
        n_messages = records = 0
        return True

    while True:
        if pending:
            wait = deadline - time.monotonic()
            if wait <= 0 or not conn.poll(wait):
                if not flush():
                    return 1
                continue
        try:
            msg: ToWriter = conn.recv()
        except (EOFError, OSError):
            log.warning("ingest service gone: writer stops (unacked messages are redelivered)")
            return 1
        if type(msg) is Handover:
            if not pending:
                deadline = time.monotonic() + config.flush_max_age_s
            for topic, payload, received_at in msg.batch:
                pm = parse(topic, payload, received_at)
                parts = _partitions(pm)
                limit = config.flush_max_partitions
                if (
                    pending
                    and len(partitions) + len(parts) > limit
                    and len(partitions | parts) > limit
                ):
                    if not flush():
                        return 1
                    deadline = time.monotonic() + config.flush_max_age_s
                partitions |= parts
                pending.append(pm)
                n_messages += 1
                records += len(pm.readings) + len(pm.rejections) or 1
            if (
                records >= config.flush_max_records or n_messages >= config.flush_max_messages
            ) and not flush():
                return 1
        elif type(msg) is Stop:
            if pending and not flush():
                return 1
            conn.send(Bye())
            return 0
        else:  # pragma: no cover - protocol bug
            raise RuntimeError(f"unexpected message {msg!r} from the ingest service")


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL us when the service process dies (however it dies)."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


class _NoPandas:
    """Import hook: ``pandas`` is not importable in the writer process.

    ``pa.array`` imports pandas only to ask whether a list is a pandas object (+45 MB RSS, ~1 s);
    the writer never uses pandas, and this is what keeps service + writer under 300 MB.
    """

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"{name} is not used by the ingest writer", name=name)


def main(argv: list[str] | None = None) -> int:
    sys.meta_path.insert(0, _NoPandas())
    args = sys.argv[1:] if argv is None else argv
    fd, parent_pid = int(args[0]), int(args[1])
    _die_with_parent(parent_pid)
    # Stops are the service's to coordinate (a Ctrl-C or a cgroup-wide SIGTERM reaches us too):
    # it sends Stop after its last hand-over, and we flush before exiting.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(fd)
    first: ToWriter = conn.recv()
    if not isinstance(first, Configure):
        raise RuntimeError(f"expected the writer's configuration, got {first!r}")
    config = first.config
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s %(name)s[writer]: %(message)s",
        stream=sys.stderr,
    )
    return serve(conn, config)


if __name__ == "__main__":
    sys.exit(main())
