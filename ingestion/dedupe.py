"""Recognise exact re-deliveries, also across restarts, in bounded memory.

One index per partition (``(feed, local_date)`` for readings, ``("quarantine", received_date)`` for
quarantine rows), loaded lazily from the partition's existing files the first time it is touched,
so a message redelivered after a crash (written, fsync'd, but not acknowledged) is recognised.

Per partition the index keeps two sorted ``uint64`` numpy arrays: digests of natural keys and
digests of (key, content) pairs, 16 bytes per stored reading. A reading whose pair is present is a
duplicate; whose key is present with other content is a revision (stored; the warehouse keeps the
latest received); otherwise it is new. Digests are 64-bit: the chance of a false "duplicate" among
a partition's n readings is about n²/2⁶⁵ (1e-8 for 1 million readings per feed and day).

Memory is bounded by ``max_entries`` over all loaded partitions; the least recently used partitions
are evicted (and reloaded from disk if touched again).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from enum import IntEnum
from hashlib import blake2b
from pathlib import Path
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingestion.landing import landing_partition, list_parts, quarantine_partition, set_aside

log = logging.getLogger(__name__)

PartitionId = tuple[str, date]  # (feed or "quarantine", date)
QUARANTINE = "quarantine"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_EMPTY = np.empty(0, dtype=np.uint64)


class Verdict(IntEnum):
    NEW = 0
    REVISION = 1
    DUPLICATE = 2


def _digest(text: str | bytes) -> int:
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "little")


def key_digest(site_id: str, device_id: str, lane: int | None, observed_us: int) -> int:
    """Digest of a reading's natural key within its feed (observed_at as µs since the epoch, UTC)."""
    return _digest(f"{site_id}\x1f{device_id}\x1f{lane}\x1f{observed_us}")


def hash_digest(content_hash: str) -> int:
    """Digest of the content hash, which already covers the key: it stands for the (key, content) pair.

    The parser's hash is hex of a cryptographic hash: its first 64 bits are the digest.
    """
    try:
        return int(content_hash[:16], 16)
    except ValueError:  # not hex (another hash format): hash it
        return _digest(content_hash)


def observed_us(ts: datetime) -> int:
    return (ts - _EPOCH) // _ONE_US


def reading_digests(row: dict[str, object]) -> tuple[int, int]:
    """(key digest, pair digest) of a landing row as produced by the contract parser."""
    return (
        key_digest(
            row["site_id"],  # type: ignore[arg-type]
            row["device_id"],  # type: ignore[arg-type]
            row["lane"],  # type: ignore[arg-type]
            observed_us(row["observed_at"]),  # type: ignore[arg-type]
        ),
        hash_digest(row["content_hash"]),  # type: ignore[arg-type]
    )


def quarantine_digest(row: dict[str, object]) -> int:
    """Identity of a quarantine row: topic, position in the batch, size and the stored bytes.

    The size matters: of an oversized payload only a prefix is stored, so two different
    too-large messages with the same prefix would otherwise pass for duplicates.
    """
    payload = row["payload"]
    head = f"{row['topic']}\x1f{row['reading_index']}\x1f{row['payload_bytes']}\x1f".encode(
        "utf-8", "surrogatepass"
    )
    return _digest(head + bytes(cast("bytes", payload)))


def _read_or_set_aside(path: Path, columns: list[str], root: Path | None) -> pa.Table | None:
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        # A truncated or corrupt file must not stop ingest for every feed: move it out of the
        # partition (the ingest DAG records it in dq.quarantine) and index the others.
        moved = set_aside(path, root) if root is not None else None
        log.warning(
            "unreadable file %s (%s: %s) %s; its readings are not in the dedupe index",
            path, type(exc).__name__, exc, f"moved to {moved}" if moved else "skipped",
        )  # fmt: skip
        return None


def load_landing_digests(
    files: Sequence[Path], root: Path | None = None
) -> tuple[list[int], list[int]]:
    """Key and pair digests of the readings in landing files (reads only 5 columns).

    An unreadable file is skipped, and set aside when ``root`` (the landing folder) is given."""
    keys: list[int] = []
    pairs: list[int] = []
    cols = ["site_id", "device_id", "lane", "observed_at", "content_hash"]
    for path in files:
        t = _read_or_set_aside(path, cols, root)
        if t is None:
            continue
        us = pc.cast(t.column("observed_at"), "int64").to_pylist()
        for site, dev, lane, obs, ch in zip(
            t.column("site_id").to_pylist(),
            t.column("device_id").to_pylist(),
            t.column("lane").to_pylist(),
            us,
            t.column("content_hash").to_pylist(),
            strict=True,
        ):
            keys.append(key_digest(site, dev, lane, obs))
            pairs.append(hash_digest(ch))
    return keys, pairs


def load_quarantine_digests(
    files: Sequence[Path], root: Path | None = None
) -> tuple[list[int], list[int]]:
    digests: list[int] = []
    for path in files:
        cols = ["topic", "reading_index", "payload", "payload_bytes"]
        t = _read_or_set_aside(path, cols, root)
        if t is None:
            continue
        for row in t.to_pylist():
            digests.append(quarantine_digest(row))
    return digests, digests


def _sorted_unique(values: Iterable[int]) -> np.ndarray:
    arr = np.fromiter(values, dtype=np.uint64)
    return np.unique(arr) if arr.size else _EMPTY


def _contains(sorted_arr: np.ndarray, values: np.ndarray) -> np.ndarray:
    if sorted_arr.size == 0 or values.size == 0:
        return np.zeros(values.size, dtype=bool)
    idx = np.searchsorted(sorted_arr, values)
    idx[idx == sorted_arr.size] = 0
    found: np.ndarray = sorted_arr[idx] == values
    return found


def _merge(sorted_arr: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Insert ``new`` (any order, may repeat) into a sorted unique array, keeping it so."""
    new = np.unique(new)
    new = new[~_contains(sorted_arr, new)]
    if new.size == 0:
        return sorted_arr
    return np.insert(sorted_arr, np.searchsorted(sorted_arr, new), new)


class _Partition:
    __slots__ = ("keys", "pairs")

    def __init__(self, keys: np.ndarray, pairs: np.ndarray) -> None:
        self.keys = keys
        self.pairs = pairs

    @property
    def size(self) -> int:
        return int(self.keys.size + self.pairs.size)


Loader = Callable[[PartitionId], tuple[Iterable[int], Iterable[int]]]


class DedupeIndex:
    """Classify readings as new / revision / duplicate against everything already durable.

    Call ``classify`` for a batch, write the batch's non-duplicates durably, then ``commit`` them:
    the index never claims a reading that is not on disk (else a redelivery would be dropped).
    Only the writer thread uses it (not thread-safe).
    """

    def __init__(self, loader: Loader, max_entries: int = 8_000_000) -> None:
        self._loader = loader
        self.max_entries = max_entries
        self._parts: OrderedDict[PartitionId, _Partition] = OrderedDict()
        self._entries = 0
        self.loads = 0
        self.evictions = 0

    @classmethod
    def for_dirs(
        cls, landing_dir: Path, quarantine_dir: Path, max_entries: int = 8_000_000
    ) -> DedupeIndex:
        def load(pid: PartitionId) -> tuple[Iterable[int], Iterable[int]]:
            name, day = pid
            if name == QUARANTINE:
                return load_quarantine_digests(
                    list_parts(quarantine_partition(quarantine_dir, day)), quarantine_dir
                )
            return load_landing_digests(
                list_parts(landing_partition(landing_dir, name, day)), landing_dir
            )

        return cls(load, max_entries)

    @property
    def entries(self) -> int:
        return self._entries

    @property
    def partitions(self) -> list[PartitionId]:
        return list(self._parts)

    def _get(self, pid: PartitionId) -> _Partition:
        part = self._parts.get(pid)
        if part is None:
            keys, pairs = self._loader(pid)
            part = _Partition(_sorted_unique(keys), _sorted_unique(pairs))
            self.loads += 1
            if part.size:
                log.info(
                    "dedupe index: loaded %s %s (%d readings)", pid[0], pid[1], part.pairs.size
                )
            self._parts[pid] = part
            self._entries += part.size
            self._evict(keep=pid)
        else:
            self._parts.move_to_end(pid)
        return part

    def _evict(self, keep: PartitionId) -> None:
        while self._entries > self.max_entries and len(self._parts) > 1:
            pid, part = next(iter(self._parts.items()))
            if pid == keep:  # pragma: no cover - keep is always the most recent
                break
            del self._parts[pid]
            self._entries -= part.size
            self.evictions += 1

    def classify(
        self, pid: PartitionId, keys: Sequence[int], pairs: Sequence[int]
    ) -> list[Verdict]:
        """Verdict per reading, in order; repeats inside the batch count against earlier ones."""
        part = self._get(pid)
        karr = np.fromiter(keys, dtype=np.uint64, count=len(keys))
        parr = np.fromiter(pairs, dtype=np.uint64, count=len(pairs))
        key_known = _contains(part.keys, karr).tolist()
        pair_known = _contains(part.pairs, parr).tolist()
        seen_keys: set[int] = set()
        seen_pairs: set[int] = set()
        out: list[Verdict] = []
        for k, p, kk, pk in zip(keys, pairs, key_known, pair_known, strict=True):
            if pk or p in seen_pairs:
                out.append(Verdict.DUPLICATE)
                continue
            out.append(Verdict.REVISION if kk or k in seen_keys else Verdict.NEW)
            seen_keys.add(k)
            seen_pairs.add(p)
        return out

    def commit(self, pid: PartitionId, keys: Sequence[int], pairs: Sequence[int]) -> None:
        """Record readings that are now durable in the partition's files."""
        part = self._get(pid)
        before = part.size
        part.keys = _merge(part.keys, np.fromiter(keys, dtype=np.uint64, count=len(keys)))
        part.pairs = _merge(part.pairs, np.fromiter(pairs, dtype=np.uint64, count=len(pairs)))
        self._entries += part.size - before
        self._evict(keep=pid)
