"""What the ingest service and its landing writer say to each other, over one socket pair.

``multiprocessing.connection.Connection`` carries each message as one length-prefixed pickle;
the same objects travel through the thread worker's socket pair.

service -> writer: ``Configure`` once, then ``Handover`` batches in arrival order, and ``Stop``
after the last one.

writer -> service: ``Ready`` once the writer holds the client id's lock, removed stale temp files
and warmed up; ``Durable`` after each flush (the next ``messages`` messages in arrival order are
now durable, or duplicates of durable ones, and may be acknowledged); ``Failed`` when a write
failed (nothing of that flush is reported durable); ``Bye`` after the final flush.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from ingestion.metrics import FeedCounters
    from ingestion.writer import WriterConfig

# One MQTT message as received: topic, payload (paho hands a bytearray), receive time (epoch
# seconds). A plain tuple:
# a hand-over carries a thousand of them, and a tuple pickles for the least.
RawMessage: TypeAlias = tuple[str, bytes | bytearray, float]


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
