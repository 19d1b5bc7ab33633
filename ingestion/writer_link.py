"""The ingest service's end of the landing writer: hand-over batches out, durable reports in.

Received messages are collected into a hand-over batch, together with each message's ticket in
the in-flight FIFO; full (or old) batches go to the writer (``ingestion.writer``), in its own
process by default, over a socket pair. The receiver thread here reads the writer's reports:
each ``Durable`` pops that many of the oldest tickets, which the service then acknowledges.
The socket pair is the backpressure: when the writer is behind, the hand-over blocks the caller
(paho's network thread), TCP pushes back and the broker keeps the rest queued.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ingestion.messages import (
    Bye,
    Configure,
    Durable,
    Failed,
    Handover,
    RawMessage,
    Ready,
    Stop,
    ToService,
    ToWriter,
    WriterConfig,
)

if TYPE_CHECKING:
    from ingestion.metrics import IngestMetrics
    from ingestion.session import Ticket

log = logging.getLogger(__name__)

Worker = Literal["process", "thread"]
# Hand-over batches to the writer: big enough that pickling and the socket cost ~1 us a message,
# small enough (and at most HANDOFF_MAX_AGE_S old) not to add to the flush latency.
HANDOFF_MESSAGES = 1000
HANDOFF_BYTES = 1 << 20
HANDOFF_MAX_AGE_S = 0.05
# Not ``-m ingestion.writer``: that would import the module twice (as __main__ and by unpickling).
WRITER_MAIN = "import sys; from ingestion.writer import main; sys.exit(main(sys.argv[1:]))"


class WriterLink:
    """Start the writer, hand it batches, turn its reports into ``on_durable`` calls."""

    def __init__(
        self,
        config: WriterConfig,
        worker: Worker,
        metrics: IngestMetrics,
        *,
        stopping: threading.Event,
        on_durable: Callable[[list[Ticket], Durable], None],
        on_failure: Callable[[], None],
    ) -> None:
        self.config = config
        self.worker: Worker = worker
        self.metrics = metrics
        self.ready = threading.Event()  # the writer holds its lock and is warm
        self.error: str | None = None  # why the writer failed or died (first reason wins)
        self._stopping = stopping  # set: take no more messages (shutdown or failure)
        self._on_durable = on_durable
        self._on_failure = on_failure
        self._done = False  # the writer said Bye
        # Hand-over state, guarded by _lock (which is also held while sending, so batches reach
        # the writer in arrival order).
        self._lock = threading.Lock()
        self._batch: list[RawMessage] = []
        self._batch_bytes = 0
        self._batch_started = 0.0
        # Tickets of every handed-over message not yet durable, in arrival order. Appended by
        # the network thread, popped by the receiver thread (deque append/popleft are atomic).
        self.inflight: deque[Ticket] = deque()
        self._pipe: Connection | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._writer_thread: threading.Thread | None = None
        self._receiver: threading.Thread | None = None

    @property
    def pending(self) -> int:
        """Messages received and not yet durable (the hand-over batch's are in ``inflight`` too)."""
        return len(self.inflight)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the writer (process or thread) and the thread that reads its reports."""
        ours, theirs = socket.socketpair()
        if self.worker == "process":
            import ingestion

            root = str(Path(ingestion.__file__).resolve().parent.parent)
            path = os.environ.get("PYTHONPATH")
            env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
            fd = theirs.fileno()
            self._proc = subprocess.Popen(
                [sys.executable, "-c", WRITER_MAIN, str(fd), str(os.getpid())],
                pass_fds=(fd,),
                env=env,
                stdin=subprocess.DEVNULL,
            )
            theirs.close()  # else the writer would never see end-of-file when we die
            self._pipe = Connection(ours.detach())
            self._pipe.send(Configure(self.config))
        else:
            from ingestion.writer import serve

            self._pipe = Connection(ours.detach())
            wconn = Connection(theirs.detach())
            config = self.config

            def run_writer() -> None:
                try:
                    serve(wconn, config)
                finally:
                    wconn.close()

            self._writer_thread = threading.Thread(
                target=run_writer, name="ingest-writer", daemon=True
            )
            self._writer_thread.start()
        self._receiver = threading.Thread(
            target=self._receive_loop, name="ingest-acks", daemon=True
        )
        self._receiver.start()

    def finish(self) -> None:
        """Take no more messages, hand over the last batch, wait until its flush is reported."""
        with self._lock:
            # From here nothing more is taken: what arrives now stays unacknowledged.
            self._stopping.set()
            if self._batch and self.error is None:
                self._handoff_locked()
            self._send(Stop())
        if self._receiver is not None:
            self._receiver.join()  # the writer's last flush is acked (or it failed/died)

    def close(self) -> None:
        """Wait for the writer to exit (after ``finish``); a non-zero exit is a failure."""
        if self._proc is not None:
            try:
                code = self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log.error("writer process %d did not exit: killing it", self._proc.pid)
                self._proc.kill()
                code = self._proc.wait()
            if code != 0 and self.error is None:
                self.error = f"writer process exited with {code}"
        if self._writer_thread is not None:
            self._writer_thread.join(timeout=30)
        if self._pipe is not None:
            self._pipe.close()

    # ------------------------------------------------------------------ hand-over

    def put(
        self, topic: str, payload: bytes | bytearray, received_at: float, ticket: Ticket
    ) -> bool:
        """Add one message to the hand-over batch; False once stopping (it stays unacked)."""
        with self._lock:
            if self._stopping.is_set():
                return False  # the broker redelivers it to the next session
            if not self._batch:
                self._batch_started = time.monotonic()
            self._batch.append((topic, payload, received_at))
            self.inflight.append(ticket)
            self._batch_bytes += len(payload)
            if len(self._batch) >= HANDOFF_MESSAGES or self._batch_bytes >= HANDOFF_BYTES:
                self._handoff_locked()  # blocks while the writer is behind: backpressure
        return True

    def hand_over_if_old(self, now: float) -> None:
        """Send a partial batch once its oldest message waited HANDOFF_MAX_AGE_S."""
        if self._batch and now - self._batch_started >= HANDOFF_MAX_AGE_S:
            with self._lock:
                if self._batch and not self._stopping.is_set():
                    self._handoff_locked()

    def _handoff_locked(self) -> None:
        batch = self._batch
        self._batch = []
        self._batch_bytes = 0
        self.metrics.messages_received_add(
            len(batch),
            datetime.fromtimestamp(batch[0][2], UTC),
            datetime.fromtimestamp(batch[-1][2], UTC),
        )
        self._send(Handover(batch))

    def _send(self, msg: ToWriter) -> None:
        """Send to the writer; caller holds ``_lock``. Blocks while the writer is behind."""
        if self._pipe is None or self.error is not None:
            return
        try:
            self._pipe.send(msg)
        except (OSError, ValueError) as exc:
            self._fail(f"writer unreachable: {exc}")

    # ------------------------------------------------------------------ reports

    def durable(self, report: Durable) -> None:
        """The writer made the next ``report.messages`` messages durable: pass their tickets on."""
        tickets = [self.inflight.popleft() for _ in range(report.messages)]
        self._on_durable(tickets, report)

    def _fail(self, reason: str) -> None:
        if self.error is None:
            self.error = reason
        self._on_failure()

    def _receive_loop(self) -> None:
        pipe = self._pipe
        assert pipe is not None
        while True:
            try:
                msg: ToService = pipe.recv()
            except (EOFError, OSError):
                if not self._done:
                    code = self._proc.poll() if self._proc is not None else None
                    self._fail(
                        f"writer died (exit code {code}); nothing after its last flush acked"
                    )
                return
            if isinstance(msg, Durable):
                self.durable(msg)
            elif isinstance(msg, Ready):
                self.ready.set()
            elif isinstance(msg, Failed):
                self._fail(f"landing write failed: {msg.error}")
                return
            elif isinstance(msg, Bye):
                self._done = True
                return
