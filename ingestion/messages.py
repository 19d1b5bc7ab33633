"""What the ingest service and its landing writer say to each other, over one socket pair.

``multiprocessing.connection.Connection`` carries each message as one length-prefixed pickle;
the same objects travel through the thread worker's socket pair.

service -> writer: ``Configure`` (the ``WriterConfig``) once, then ``Handover`` batches in arrival order, and ``Stop``
after the last one.

writer -> service: ``Ready`` once the writer holds the client id's lock, removed stale temp files
and warmed up; ``Durable`` after each flush (the next ``messages`` messages in arrival order are
now durable, or duplicates of durable ones, and may be acknowledged); ``Failed`` when a write
failed (nothing of that flush is reported durable); ``Bye`` after the final flush.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from common.settings import Settings
    from ingestion.metrics import FeedCounters

# One MQTT message as received: topic, payload (paho hands a bytearray), receive time (epoch
# seconds). A plain tuple: a hand-over carries a thousand of them, and a tuple pickles for least.
RawMessage: TypeAlias = tuple[str, bytes | bytearray, float]


@dataclass
class WriterConfig:
    """What the writer needs to know; here, not in ``ingestion.writer``, so that the service
    process never imports the writer's pyarrow."""

    settings: Settings
    flush_max_records: int
    flush_max_messages: int
    flush_max_age_s: float
    dedupe_max_entries: int
    log_level: int = logging.INFO
    # One landing file per (feed, local date) partition: a flush's time grows with the number of
    # partitions it touches, and acks wait for the flush. 64 files take ~0.2 s here.
    flush_max_partitions: int = 64


@dataclass(frozen=True, slots=True)
class Configure:
    config: WriterConfig


@dataclass(frozen=True, slots=True)
class Handover:
    batch: list[RawMessage]


@dataclass(frozen=True, slots=True)
class Stop:
    pass


@dataclass(frozen=True, slots=True)
class Ready:
    pass


@dataclass(frozen=True, slots=True)
class Durable:
    messages: int  # how many of the oldest unacknowledged messages this flush made durable
    counts: dict[str, FeedCounters]
    files: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Failed:
    error: str


@dataclass(frozen=True, slots=True)
class Bye:
    pass


ToWriter: TypeAlias = Configure | Handover | Stop
ToService: TypeAlias = Ready | Durable | Failed | Bye
