"""Per-exporter bounded queue: admission control, coalescing, retry with backoff, persistence.

Admission happens before a request is processed (``has_room``), so a full queue turns
into a retryable status for the client instead of a silent drop. Every item that
enters is either exported or counted in ``otel_receiver_dropped_items_total`` with a
reason.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections import deque
from dataclasses import dataclass

from otel_receiver.component import (
    REQUEST_TYPES,
    Batch,
    Exporter,
    ExporterConfig,
    PermanentExportError,
    RequestContext,
    RetryableExportError,
    Signal,
    count_items,
    signal_of,
    wire_pieces,
)
from otel_receiver.persistent_queue import PersistentLog
from otel_receiver.telemetry import SelfTelemetry

log = logging.getLogger("otel_receiver.queue")


@dataclass(slots=True)
class _Item:
    seq: int
    signal: Signal
    batch: Batch
    context: RequestContext
    items: int
    group_last: int | None = None  # replayed group: take exactly up to this seq
    wire: tuple[bytes, ...] | None = None  # the batch serialized (in pieces), if that travelled with it
    wire_from_client: bool = False


class ExporterQueue:
    def __init__(
        self, exporter_id: str, exporter: Exporter, config: ExporterConfig, telemetry: SelfTelemetry
    ) -> None:
        self.exporter_id = exporter_id
        self.exporter = exporter
        self.config = config
        self.qc = config.sending_queue
        self.telemetry = telemetry
        self._waiting: deque[_Item] = deque()
        # first seq of a group being exported -> items per signal not yet exported
        self._inflight: dict[int, dict[Signal, int]] = {}
        self._size = 0  # items waiting or in flight
        self._wakeup = asyncio.Event()
        # One consumer at a time gathers a group; the others export theirs meanwhile. Two
        # consumers gathering at once would each wait out flush_timeout with half the
        # requests: twice the exports, each with its fixed cost.
        self._gathering = asyncio.Lock()
        self._closed = False
        self._abort = asyncio.Event()
        self._consumers: list[asyncio.Task[None]] = []
        self._storage = PersistentLog(self.qc.storage) if self.qc.storage else None
        self._run_id = self._storage.run_id if self._storage else secrets.token_hex(8)
        self._next_seq = 1
        # Read at scrape time: setting it per request and export costs a lock each time.
        telemetry.queue_size.labels(exporter_id).set_function(lambda: self._size)
        telemetry.queue_capacity.labels(exporter_id).set(self.qc.queue_size)
        self._exported = {s: telemetry.exported_items.labels(exporter_id, s.value) for s in Signal}
        # A persistent queue must store a request before it is acknowledged, and batching
        # waits for more: neither exports from ``put``.
        self._exports_in_put = exporter.exports_now and self._storage is None and not self.qc.batch.enabled

    def _drop(self, signal: Signal, reason: str, n: int) -> None:
        self.telemetry.dropped_items.labels(self.exporter_id, signal.value, reason).inc(n)

    def _drop_rejected(self, signal: Signal, n: int, error: PermanentExportError) -> None:
        log.error("%s: dropped %d %s: %s", self.exporter_id, n, signal.value, error)
        self._drop(signal, "permanent_error", n)

    # --- intake ----------------------------------------------------------------------
    def has_room(self) -> bool:
        return self._size < self.qc.queue_size

    @property
    def accepts_lagging_objects(self) -> bool:
        """Whether batches whose objects lag behind their wire may be queued as they are:
        the exporter reads only the wire or only counts, and a persistent queue stores
        the wire (it keeps it only for an exporter that uses it)."""
        exporter = self.exporter
        return exporter.accepts_lagging_objects and (exporter.uses_wire or self._storage is None)

    @property
    def size(self) -> int:
        return self._size

    def put(self, batch: Batch, context: RequestContext, items: int | None = None) -> None:
        """Enqueue an admitted batch. Never blocks; admission was checked with ``has_room``.
        ``items``: its ``count_items``, when the caller has it (a pipeline counts once for
        all its exporters)."""
        n = count_items(batch) if items is None else items
        if n == 0:
            return
        signal = signal_of(batch)
        if self._closed:
            self._drop(signal, "queue_closed", n)
            return
        wire = context.wire_pieces_for(batch) if self.exporter.uses_wire else None
        if self._storage is not None:
            body = b"".join(wire) if wire is not None else batch.SerializeToString()
            seq = self._storage.append(signal, body, context)
        else:
            seq = self._next_seq
            self._next_seq += 1
        item = _Item(seq, signal, batch, context, n, None, wire, context.wire_from_client)
        # Only with nothing queued or in flight ahead: requests are exported in order.
        if self._exports_in_put and not self._waiting and not self._inflight and self._export_now(item):
            return
        self._waiting.append(item)
        self._size += n
        self._wakeup.set()

    def _export_now(self, item: _Item) -> bool:
        """Exports ``item`` synchronously; False when that failed and it must be queued:
        a consumer then exports it again, and retries with backoff should that fail."""
        signal, n, parts = item.signal, item.items, [item.batch]
        context = self._export_context([item], parts, self._dedup_token(item.seq, item.seq))
        try:
            self.exporter.export_now(parts, context)
        except PermanentExportError as e:
            self._drop_rejected(signal, n, e)
            return True
        except Exception as e:
            reason = str(e) or type(e).__name__
            log.warning("%s: export failed (%s); retrying from the queue", self.exporter_id, reason)
            self.telemetry.export_retries.labels(self.exporter_id).inc()
            return False
        self._exported[signal].inc(n)
        return True

    # --- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        if self._storage is not None:
            items, groups = self._storage.recover()
            group_end = dict(groups)
            for it in items:
                batch = REQUEST_TYPES[it.signal]()
                batch.ParseFromString(it.body)
                n = count_items(batch)
                self._waiting.append(
                    _Item(
                        it.seq,
                        it.signal,
                        batch,
                        it.context,
                        n,
                        group_end.get(it.seq),
                        (it.body,) if self.exporter.uses_wire else None,
                        True,
                    )
                )
                self._size += n
            if items:
                log.info(
                    "%s: replaying %d items from the persistent queue at %s",
                    self.exporter_id,
                    self._size,
                    self.qc.storage,
                )
        for i in range(self.qc.num_consumers):
            self._consumers.append(
                asyncio.create_task(self._consume(), name=f"{self.exporter_id}-consumer-{i}")
            )

    async def drain(self, timeout: float) -> None:
        """Stop intake, export what is queued; after ``timeout`` give up and count the rest."""
        self._closed = True
        self._wakeup.set()
        done, pending = (
            await asyncio.wait(self._consumers, timeout=timeout) if self._consumers else (set(), set())
        )
        if pending:
            self._abort.set()
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        left = self._size
        if left:
            if self._storage is not None:
                log.warning(
                    "%s: %d items still queued at shutdown; kept in %s for the next start",
                    self.exporter_id,
                    left,
                    self.qc.storage,
                )
            else:
                by_signal: dict[Signal, int] = {}
                pending_items = [(it.signal, it.items) for it in self._waiting]
                pending_items += [kv for counts in self._inflight.values() for kv in counts.items()]
                for sig, n in pending_items:
                    by_signal[sig] = by_signal.get(sig, 0) + n
                for sig, n in by_signal.items():
                    self._drop(sig, "shutdown_timeout", n)
                log.error("%s: dropped %d queued items: shutdown timeout", self.exporter_id, left)
        if self._storage is not None:
            self._storage.close()
        for t in done:
            if t.exception() is not None:
                log.error("%s: consumer failed: %r", self.exporter_id, t.exception())

    # --- consuming -------------------------------------------------------------------
    async def _take(self) -> list[_Item] | None:
        while not self._waiting:
            if self._closed:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        group = [self._waiting.popleft()]
        first = group[0]
        if first.group_last is not None:
            # A replayed group keeps its original bounds so its dedup token is unchanged.
            while self._waiting and self._waiting[0].seq <= first.group_last:
                group.append(self._waiting.popleft())
            return group
        bc = self.qc.batch
        if not bc.enabled:
            return group
        total = first.items
        deadline = time.monotonic() + bc.flush_timeout
        while True:
            if self._waiting:
                nxt = self._waiting[0]
                # Signals mix in a group (one exporter often takes traces, metrics and
                # logs): ending a group at every change of signal would export each
                # request alone whenever signals interleave. The group is split per
                # signal at export.
                if nxt.group_last is not None:
                    break
                if bc.max_size and total + nxt.items > bc.max_size:
                    break
                # Past min_size, only a backlog (the consumers fall behind) rides along,
                # and only up to max_size: fewer, larger exports catch up fastest when
                # each export has a fixed cost (a ClickHouse insert analyses its views'
                # SQL every time: ~80 ms).
                if total >= bc.min_size and not bc.max_size:
                    break
                group.append(self._waiting.popleft())
                total += nxt.items
                continue
            remaining = deadline - time.monotonic()
            if total >= bc.min_size or remaining <= 0 or self._closed:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                break
        return group

    async def _consume(self) -> None:
        exports = 0
        while True:
            exports += 1
            if exports % 64 == 0:
                await asyncio.sleep(0)  # fairness: let intake run during long drains
            async with self._gathering:
                group = await self._take()
            if group is None:
                return
            first, last = group[0].seq, group[-1].seq
            n = sum(it.items for it in group)
            per_signal = self._coalesce(group)
            remaining = {signal: items for signal, _, _, items in per_signal}
            self._inflight[first] = remaining
            if self._storage is not None and len(group) > 1 and group[0].group_last is None:
                self._storage.claim(first, last)
            # Cancelled (crash-like shutdown timeout): no release, so a persistent queue
            # keeps the group unacknowledged and replays it at the next start.
            for signal, parts, ctx, items in per_signal:
                await self._export(parts, ctx, signal, items)
                del remaining[signal]  # exported or counted as dropped: no longer in flight
            self._release(first, last, n)

    def _coalesce(self, group: list[_Item]) -> list[tuple[Signal, list[Batch], RequestContext, int]]:
        """Per signal in the group: its requests, the context of their one export (merged
        by the exporter) and their item count."""
        token = self._dedup_token(group[0].seq, group[-1].seq)
        by_signal: dict[Signal, list[_Item]] = {}
        for it in group:
            by_signal.setdefault(it.signal, []).append(it)
        exports = []
        for signal, items in by_signal.items():
            # A replay re-forms the same group, hence the same split and tokens.
            signal_token = token if len(by_signal) == 1 else f"{token}/{signal.value}"
            batches = [it.batch for it in items]
            count = sum(it.items for it in items)
            exports.append((signal, batches, self._export_context(items, batches, signal_token), count))
        return exports

    def _dedup_token(self, first: int, last: int) -> str:
        """Names the export of queued requests ``first``..``last``; a replay names it alike."""
        return f"{self.exporter_id}:{self._run_id}:{first}-{last}"

    def _export_context(self, items: list[_Item], batches: list[Batch], token: str) -> RequestContext:
        """The context of one export of ``batches`` (the requests of ``items``)."""
        context = self._context(items, token)
        # For the exporter: the parts' serializations concatenated serialize their merge.
        pieces = items[0].wire if len(items) == 1 else wire_pieces([it.wire for it in items])
        if pieces is None and self.exporter.uses_wire:
            # It reads the objects when some part came without bytes: bring lagging
            # ones up to their wire (here, on the event loop, as the pipeline would).
            for it in items:
                if it.context.objects_lag and it.context.wire_batch is it.batch:
                    it.context.sync_objects()
        # The exporter reads the wire pieces, or objects synced above, or counts only.
        context.objects_lag = False
        if pieces is not None:
            context.set_wire(batches, pieces, any(it.wire_from_client for it in items))
        else:
            context.drop_wire()
        return context

    @staticmethod
    def _context(group: list[_Item], token: str) -> RequestContext:
        if len(group) == 1:
            return group[0].context.with_dedup_token(token)
        c0 = group[0].context
        same_principal = all(it.context.tenant == c0.tenant and it.context.actor == c0.actor for it in group)
        return RequestContext(
            transport="internal",
            tenant=c0.tenant if same_principal else None,
            actor=c0.actor if same_principal else None,
            roles=c0.roles if same_principal else (),
            received_at_ns=c0.received_at_ns,
            dedup_token=token,
        )

    def _release(self, first: int, last: int, n: int) -> None:
        self._inflight.pop(first, None)
        self._size -= n
        if self._storage is not None:
            candidates = list(self._inflight)
            if self._waiting:
                candidates.append(self._waiting[0].seq)
            self._storage.ack(first, last, min(candidates, default=None))

    async def _export(self, parts: list[Batch], ctx: RequestContext, signal: Signal, n: int) -> None:
        rc = self.config.retry_on_failure
        started = time.monotonic()
        interval = rc.initial_interval
        while True:
            try:
                # asyncio.timeout, not wait_for: no task per export, so an exporter that
                # does not suspend (debug, in-memory) drains the queue without yielding
                # a loop turn per batch and keeps up with intake.
                if self.exporter.suspends:
                    async with asyncio.timeout(self.config.timeout):
                        await self.exporter.export_parts(parts, ctx)
                else:
                    await self.exporter.export_parts(parts, ctx)
            except asyncio.CancelledError:
                raise
            except PermanentExportError as e:
                self._drop_rejected(signal, n, e)
                return
            except Exception as e:
                reason = str(e) or type(e).__name__
                if not rc.enabled:
                    log.error("%s: export failed, retry disabled: %s", self.exporter_id, reason)
                    self._drop(signal, "export_failed", n)
                    return
                wait = interval * random.uniform(0.8, 1.2)
                if isinstance(e, RetryableExportError) and e.retry_after is not None:
                    wait = max(wait, e.retry_after)
                elapsed = time.monotonic() - started
                if rc.max_elapsed_time and elapsed + wait > rc.max_elapsed_time:
                    log.error(
                        "%s: dropped %d %s after %.1fs of retries: %s",
                        self.exporter_id,
                        n,
                        signal.value,
                        elapsed,
                        reason,
                    )
                    self._drop(signal, "retries_exhausted", n)
                    return
                log.warning("%s: export failed (%s); retrying in %.2fs", self.exporter_id, reason, wait)
                self.telemetry.export_retries.labels(self.exporter_id).inc()
                interval = min(interval * rc.multiplier, rc.max_interval)
                try:
                    await asyncio.wait_for(self._abort.wait(), wait)
                    raise asyncio.CancelledError
                except TimeoutError:
                    continue
            else:
                self._exported[signal].inc(n)
                return
