"""The audit trail: append-only, hash-chained audit records, written to a store.

Each receiver process writes one *chain*: records numbered 1, 2, 3, ... (``Seq``), each
carrying the SHA-256 of its predecessor (``PrevHash``) and its own (``RecordHash``) over
a canonical encoding of every column. Changing any stored column, deleting or reordering
records breaks the chain at that record; ``VERIFY_SQL`` finds where, in ClickHouse
itself. A chain opens with an ``audit.chain.open`` record and a clean shutdown closes it
with ``audit.chain.close``; a chain without the close record was cut short (a crash, or
records removed from its end), which hashing alone cannot tell apart.

A new chain starts with every process (its id names host, process and start time), so
two receivers on one store, or a restarted one, never interleave one chain, and nothing
has to be read back at start.

Hashing cannot show records removed from the end of a chain, or a suffix rewritten with
fresh hashes. *Anchors* can: with ``anchor_file`` set, the trail appends the (Seq,
RecordHash) of its latest stored record to a file outside the store, and logs it, at its
first write, every ``anchor_interval`` and at shutdown; ``audit-verify`` checks that the
store still holds each chain up to its last anchor with the same hash.

Records are written in order by one background thread. Until the store has them they
wait in memory; when ``max_pending`` are waiting (the store is down), ``has_room`` turns
false and the receiver answers "retry later": nothing is ingested that cannot be
audited, and no record is dropped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from exporters.clickhouse.sql import sql_literal
from otel_receiver.telemetry import PerRegistry

log = logging.getLogger(__name__)

GENESIS: Final = "0" * 64  # PrevHash of a chain's first record
ACTION_CHAIN_OPEN: Final = "audit.chain.open"
ACTION_CHAIN_CLOSE: Final = "audit.chain.close"
RECORDS_METRIC: Final = "otel_receiver_audit_records"  # _total, by outcome
PENDING_METRIC: Final = "otel_receiver_audit_pending_records"


@runtime_checkable
class AuditSink(Protocol):
    """A store that keeps audit records (the ClickHouse exporter's ``audit_log``)."""

    def write_audit_rows(self, body: bytes, dedup_token: str) -> None:
        """Insert rows given in ClickHouse's ``JSONColumns`` format (an object of column
        arrays); the same token twice stores them once.
        Raises on failure (the trail retries)."""
        ...


@dataclass(slots=True)
class AuditEntry:
    """What happened, before the trail numbers and chains it."""

    timestamp_ns: int
    action: str
    resource_type: str
    resource_id: str = ""
    tenant: str = ""
    actor: str = ""
    trace_id: str = ""  # lowercase hex, as in otel_traces
    span_id: str = ""
    details: str = ""  # a compact JSON object


# (Seq, RecordId, entry, PrevHash, RecordHash) of a record waiting to be written.
_Chained = tuple[int, str, AuditEntry, str, str]


def record_id(chain_id: str, seq: int) -> str:
    return f"{chain_id}/{seq}"


def canonical(chain_id: str, seq: int, entry: AuditEntry, prev_hash: str) -> bytes:
    """Every column but RecordHash, each as ``<byte length>:<bytes>``: length prefixes
    make the encoding unambiguous whatever the values contain. ``VERIFY_SQL`` builds the
    same bytes from the stored columns."""
    fields = (
        chain_id,
        str(seq),
        str(entry.timestamp_ns),
        record_id(chain_id, seq),
        entry.tenant,
        entry.actor,
        entry.action,
        entry.resource_type,
        entry.resource_id,
        entry.trace_id,
        entry.span_id,
        entry.details,
        prev_hash,
    )
    # All-ASCII text (the usual case): character counts are byte counts, and one
    # formatting pass costs about half of encoding field by field.
    text = "".join([f"{len(field)}:{field}" for field in fields])
    if text.isascii():
        return text.encode()
    out = bytearray()
    for field in fields:
        b = field.encode()
        out += b"%d:" % len(b)
        out += b
    return bytes(out)


def _sql_field(expression: str) -> str:
    return f"toString(length({expression})), ':', {expression}"


# The canonical encoding computed by ClickHouse from the stored columns.
_CANONICAL_SQL: Final = "concat({})".format(
    ", ".join(
        _sql_field(e)
        for e in (
            "ChainId",
            "toString(Seq)",
            "toString(toUnixTimestamp64Nano(Timestamp))",
            "RecordId",
            "TenantId",
            "ActorId",
            "Action",
            "ResourceType",
            "ResourceId",
            "TraceId",
            "SpanId",
            "Details",
            "PrevHash",
        )
    )
)

# One row per record that breaks its chain (none: the trail is intact), with the reason.
# Window functions see each chain in Seq order; ``lagInFrame`` is the previous record.
VERIFY_SQL: Final = f"""
SELECT ChainId, Seq, RecordId, Timestamp, problem FROM (
    SELECT
        ChainId, Seq, RecordId, Timestamp,
        lower(hex(SHA256({_CANONICAL_SQL}))) AS computed,
        lagInFrame(RecordHash, 1, '{GENESIS}') OVER w AS previous_hash,
        lagInFrame(Seq, 1, 0) OVER w AS previous_seq,
        multiIf(
            Seq != previous_seq + 1, concat('records missing before Seq ', toString(Seq),
                ' (previous stored: ', toString(previous_seq), ')'),
            PrevHash != previous_hash, 'PrevHash differs from the previous record''s RecordHash',
            RecordHash != computed, 'RecordHash does not match the record''s columns (altered)',
            RecordId != concat(ChainId, '/', toString(Seq)), 'RecordId does not match ChainId/Seq',
            ''
        ) AS problem
    FROM audit_log
    WINDOW w AS (PARTITION BY ChainId ORDER BY Seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
WHERE problem != ''
ORDER BY ChainId, Seq
"""

# Per chain: how many records, its span in time, and whether it was closed cleanly.
CHAINS_SQL: Final = f"""
SELECT ChainId, count() AS records, max(Seq) AS last_seq, min(Timestamp) AS first, max(Timestamp) AS last,
       countIf(Action = '{ACTION_CHAIN_CLOSE}') > 0 AS closed
FROM audit_log GROUP BY ChainId ORDER BY first
"""


@dataclass(frozen=True, slots=True)
class Anchor:
    """The head of a chain as it was stored: its last record's Seq and RecordHash."""

    chain_id: str
    seq: int
    record_hash: str
    anchored_at_ns: int


class AnchorFile:
    """Append-only JSON lines of anchors, one per line, synced to disk as written.

    Keep the file where whoever can change the store cannot (the receiver's own volume
    when ClickHouse is a server): it is the reference the chains are checked against."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, anchor: Anchor) -> None:
        line = orjson.dumps(
            {
                "chain": anchor.chain_id,
                "seq": anchor.seq,
                "hash": anchor.record_hash,
                "time_ns": anchor.anchored_at_ns,
            }
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)

    def latest(self) -> dict[str, Anchor]:
        """The last anchor of each chain (the highest Seq): the hash chain binds every
        earlier record to it. Raises ``ValueError`` naming the line of a malformed entry,
        except a last line cut short by a crash mid-write, which is skipped."""
        latest: dict[str, Anchor] = {}
        lines = self.path.read_bytes().split(b"\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = orjson.loads(line)
                anchor = Anchor(
                    str(entry["chain"]), int(entry["seq"]), str(entry["hash"]), int(entry["time_ns"])
                )
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                if number == len(lines):  # no newline after it: the write was interrupted
                    continue
                raise ValueError(f"{self.path}: line {number} is not an anchor ({e})") from None
            held = latest.get(anchor.chain_id)
            if held is None or anchor.seq > held.seq:
                latest[anchor.chain_id] = anchor
        return latest


def anchored_records_sql(anchors: Sequence[Anchor]) -> str:
    """Per anchored chain: its last stored Seq, and the stored RecordHash at the anchored
    Seq ('' when that record is gone)."""
    chains = ", ".join(sql_literal(a.chain_id) for a in anchors)
    wanted = ", ".join(f"({sql_literal(a.chain_id)}, {a.seq})" for a in anchors)
    return (
        "SELECT ChainId, max(Seq) AS last_seq, "
        f"anyIf(RecordHash, (ChainId, Seq) IN ({wanted})) AS anchored_hash "
        f"FROM audit_log WHERE ChainId IN ({chains}) GROUP BY ChainId"
    )


def anchor_problems(anchors: Sequence[Anchor], stored: dict[str, tuple[int, str]]) -> list[str]:
    """What the store lacks against the anchors. ``stored``: chain -> (last stored Seq,
    RecordHash at the anchored Seq or '')."""
    problems = []
    for anchor in sorted(anchors, key=lambda a: (a.anchored_at_ns, a.chain_id)):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(anchor.anchored_at_ns / 1e9))
        last_seq, stored_hash = stored.get(anchor.chain_id, (0, ""))
        if last_seq == 0:
            problems.append(
                f"{anchor.chain_id}: anchored at Seq {anchor.seq} ({when} UTC), "
                "no record of the chain is stored"
            )
        elif last_seq < anchor.seq:
            problems.append(
                f"{anchor.chain_id}: anchored at Seq {anchor.seq} ({when} UTC), the store ends at Seq "
                f"{last_seq}: records removed from the end of the chain"
            )
        elif not stored_hash:
            problems.append(
                f"{anchor.chain_id}: the anchored record Seq {anchor.seq} ({when} UTC) "
                "is missing from the store"
            )
        elif stored_hash != anchor.record_hash:
            problems.append(
                f"{anchor.chain_id}: Seq {anchor.seq} has another RecordHash than its anchor ({when} UTC): "
                "the chain was rewritten up to there"
            )
    return problems


def new_chain_id() -> str:
    """Unique per process start: host, process id and start time in ms."""
    return f"{socket.gethostname()}:{os.getpid()}:{time.time_ns() // 1_000_000}"


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = Counter(
            RECORDS_METRIC,
            "Audit records, by outcome (appended to the chain, written to the store)",
            ["outcome"],
            registry=registry,
        )
        self.pending = Gauge(PENDING_METRIC, "Audit records waiting to be written", registry=registry)
        self.write_errors = Counter(
            "otel_receiver_audit_write_errors",
            "Failed writes of audit records (retried until they succeed)",
            registry=registry,
        )
        self.anchors = Counter(
            "otel_receiver_audit_anchors",
            "Anchors of the audit chain's head appended to the anchor file, by outcome",
            ["outcome"],
            registry=registry,
        )


_METRICS: PerRegistry[_Metrics] = PerRegistry()


class AuditTrail:
    """One chain: numbers and hashes entries in the order they are appended, and writes
    them to ``sink`` from a background thread, retrying with backoff until it succeeds."""

    def __init__(
        self,
        sink: AuditSink,
        registry: CollectorRegistry,
        chain_id: str | None = None,
        flush_interval: float = 1.0,
        max_pending: int = 100_000,
        max_rows_per_write: int = 10_000,
        clock_ns: Callable[[], int] = time.time_ns,
        anchor_file: AnchorFile | None = None,
        anchor_interval: float = 60.0,
    ) -> None:
        self.sink = sink
        self.chain_id = chain_id or new_chain_id()
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self.max_rows_per_write = max_rows_per_write
        self._clock_ns = clock_ns
        self._metrics = _METRICS.get(registry, _Metrics)
        self._lock = threading.Lock()
        self._seq = 0
        self._last_hash = GENESIS
        self._pending: list[_Chained] = []  # in Seq order
        self._first_pending_seq = 1
        self._unconfirmed = 0  # rows of a write that failed: the next write sends the same
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()  # one write at a time, in order
        self.anchor_file = anchor_file
        self.anchor_interval = anchor_interval
        self._stored_head: tuple[int, str] = (0, GENESIS)  # Seq and RecordHash last written
        self._anchored_seq = 0
        self._next_anchor = 0.0  # monotonic time; the first write is anchored at once

    # --- appending -------------------------------------------------------------------

    def has_room(self) -> bool:
        return len(self._pending) < self.max_pending

    @property
    def pending(self) -> int:
        return len(self._pending)

    def append(self, entries: Sequence[AuditEntry]) -> list[str]:
        """Chain ``entries`` in order; returns their record ids."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the audit trail is closed")
            ids = self._chain(entries)
        if len(self._pending) >= self.max_rows_per_write:
            self._wake.set()
        return ids

    def _chain(self, entries: Sequence[AuditEntry]) -> list[str]:
        """Append under ``self._lock``."""
        ids = []
        for entry in entries:
            self._seq += 1
            seq = self._seq
            digest = hashlib.sha256(canonical(self.chain_id, seq, entry, self._last_hash)).hexdigest()
            rid = record_id(self.chain_id, seq)
            self._pending.append((seq, rid, entry, self._last_hash, digest))
            self._last_hash = digest
            ids.append(rid)
        self._metrics.pending.set(len(self._pending))
        self._metrics.records.labels("appended").inc(len(ids))
        return ids

    # --- writing ---------------------------------------------------------------------

    def start(self) -> None:
        details = orjson.dumps({"host": socket.gethostname(), "pid": os.getpid()}).decode()
        self.append(
            [AuditEntry(self._clock_ns(), ACTION_CHAIN_OPEN, "audit_trail", self.chain_id, details=details)]
        )
        self._thread = threading.Thread(target=self._run, name="audit-trail", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        backoff = 0.0
        while True:
            if backoff:
                # While the store fails, appends do not cut the wait short.
                self._stopping.wait(backoff)
            else:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.flush()
                backoff = 0.0
                self.anchor_if_due()
            except Exception as e:
                self._metrics.write_errors.inc()
                log.warning(
                    "audit trail %s: writing %d records failed (%s); retrying", self.chain_id, self.pending, e
                )
                backoff = min(max(backoff * 2, self.flush_interval, 0.2), 30.0)

    def flush(self) -> None:
        """Write everything pending, oldest first, in writes of ``max_rows_per_write``."""
        with self._write_lock:
            while True:
                with self._lock:
                    # A failed write is retried with exactly its rows, so that its token
                    # matches if the store kept them after all (it then stores nothing).
                    rows = self._pending[: self._unconfirmed or self.max_rows_per_write]
                    first = self._first_pending_seq
                if not rows:
                    return
                last = first + len(rows) - 1
                self._unconfirmed = len(rows)
                self.sink.write_audit_rows(self._columns(rows), f"audit:{self.chain_id}:{first}-{last}")
                with self._lock:
                    del self._pending[: len(rows)]
                    self._first_pending_seq = last + 1
                    self._unconfirmed = 0
                    self._stored_head = (last, rows[-1][4])
                    self._metrics.pending.set(len(self._pending))
                self._metrics.records.labels("written").inc(len(rows))

    def anchor_if_due(self) -> None:
        """Anchor at the first write, then every ``anchor_interval``."""
        if time.monotonic() >= self._next_anchor:
            self.anchor()

    def anchor(self) -> None:
        """Record the head of what the store holds, if it moved since the last anchor: in the
        anchor file and the receiver's log (a second copy where logs are shipped)."""
        seq, record_hash = self._stored_head
        self._next_anchor = time.monotonic() + self.anchor_interval
        if self.anchor_file is None or seq <= self._anchored_seq:
            return
        anchor = Anchor(self.chain_id, seq, record_hash, self._clock_ns())
        try:
            self.anchor_file.append(anchor)
        except OSError as e:
            self._metrics.anchors.labels("failed").inc()
            log.error(
                "audit trail %s: cannot append to anchor file %s: %s", self.chain_id, self.anchor_file.path, e
            )
            return
        self._anchored_seq = seq
        self._metrics.anchors.labels("written").inc()
        log.info("audit anchor: chain %s Seq %d RecordHash %s", self.chain_id, seq, record_hash)

    def _columns(self, rows: list[_Chained]) -> bytes:
        """``rows`` in ClickHouse's JSONColumns format: one orjson call for the batch costs
        a fraction of one per row, and it runs here, off the request path."""
        entries = [row[2] for row in rows]
        return orjson.dumps(
            {
                # "seconds.nanoseconds": ClickHouse reads a DateTime64(9) from it exactly.
                "Timestamp": [
                    f"{e.timestamp_ns // 1_000_000_000}.{e.timestamp_ns % 1_000_000_000:09d}" for e in entries
                ],
                "ChainId": [self.chain_id] * len(rows),
                "Seq": [row[0] for row in rows],
                "RecordId": [row[1] for row in rows],
                "TenantId": [e.tenant for e in entries],
                "ActorId": [e.actor for e in entries],
                "Action": [e.action for e in entries],
                "ResourceType": [e.resource_type for e in entries],
                "ResourceId": [e.resource_id for e in entries],
                "TraceId": [e.trace_id for e in entries],
                "SpanId": [e.span_id for e in entries],
                "Details": [e.details for e in entries],
                "PrevHash": [row[3] for row in rows],
                "RecordHash": [row[4] for row in rows],
            }
        )

    def close(self, timeout: float = 10.0) -> None:
        """Append the closing record and write everything; records still unwritten after
        ``timeout`` (the store is down) are logged as lost."""
        if self._closed:
            return
        with self._lock:
            details = orjson.dumps({"records": self._seq + 1}).decode()
            close = AuditEntry(
                self._clock_ns(), ACTION_CHAIN_CLOSE, "audit_trail", self.chain_id, details=details
            )
            self._chain([close])  # the last record: nothing is appended after it
            self._closed = True
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        delay = 0.1
        while self._pending:
            try:
                self.flush()
            except Exception as e:
                if time.monotonic() + delay > deadline:
                    log.error(
                        "audit trail %s: %d records could not be written before shutdown (%s)",
                        self.chain_id,
                        self.pending,
                        e,
                    )
                    self._metrics.records.labels("lost").inc(self.pending)
                    break
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        self.anchor()  # the closing record, or the last one the store took


__all__ = [
    "ACTION_CHAIN_CLOSE",
    "ACTION_CHAIN_OPEN",
    "CHAINS_SQL",
    "GENESIS",
    "VERIFY_SQL",
    "Anchor",
    "AnchorFile",
    "AuditEntry",
    "AuditSink",
    "AuditTrail",
    "anchor_problems",
    "anchored_records_sql",
    "canonical",
    "new_chain_id",
    "record_id",
]
