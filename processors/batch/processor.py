"""The batch processor: coalesces requests into larger batches, as the Collector's does.

Requests are buffered per signal and per authenticated (tenant, actor, roles), so a
batch never mixes tenants, and forwarded to the rest of the pipeline when
``send_batch_size`` items are waiting (synchronously, inside ``process``) or when the
oldest has waited ``timeout`` (from a task on the event loop). ``send_batch_max_size``
splits larger batches at item granularity. ``shutdown`` forwards everything buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from otel_receiver.component import (
    REQUEST_TYPES,
    Batch,
    ComponentSettings,
    Processor,
    RequestContext,
    Signal,
    count_items,
    signal_of,
    wire_pieces,
)
from otel_receiver.telemetry import PerRegistry
from processors.batch.config import BatchProcessorConfig
from processors.batch.split import split

log = logging.getLogger("processors.batch")

_RESOURCE_FIELDS = {
    Signal.TRACES: "resource_spans",
    Signal.METRICS: "resource_metrics",
    Signal.LOGS: "resource_logs",
}

_BufferKey = tuple[Signal, str | None, str | None, tuple[str, ...]]
_Ready = tuple[Batch, RequestContext, int]  # a batch to forward, its context and item count


@dataclass(slots=True)
class _Pending:
    batch: Batch
    items: int
    context: RequestContext
    wire: tuple[bytes, ...] | None  # the batch serialized, if that travelled with it (in pieces)
    wire_from_client: bool


@dataclass(slots=True)
class _Buffer:
    deadline: float
    items: int = 0
    entries: deque[_Pending] = field(default_factory=deque)


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.send_size = Histogram(
            "otel_receiver_batch_send_size",
            "Items in each batch the batch processor sent",
            ["processor", "signal"],
            buckets=(10, 100, 500, 1000, 2000, 4000, 8192, 16384, 50000, 100000),
            registry=registry,
        )
        self.sends = Counter(
            "otel_receiver_batch_sends",
            "Batches the batch processor sent, by what triggered them (size, timeout, shutdown)",
            ["processor", "trigger"],
            registry=registry,
        )
        self.pending = Gauge(
            "otel_receiver_batch_pending_items",
            "Items buffered in the batch processor",
            ["processor"],
            registry=registry,
        )


# One set of metric objects per registry, however many batch processors share it.
_METRICS: PerRegistry[_Metrics] = PerRegistry()


def _merged_context(contexts: list[RequestContext]) -> RequestContext:
    """One context for a merged batch: identity is shared by construction (the buffer
    key), the rest is kept where all requests agree."""
    first = contexts[0]
    if len(contexts) == 1:
        return first
    transports = {c.transport for c in contexts}
    addresses = {c.client_address for c in contexts}
    return RequestContext(
        transport=first.transport if len(transports) == 1 else "internal",
        client_address=first.client_address if len(addresses) == 1 else None,
        tenant=first.tenant,
        actor=first.actor,
        roles=first.roles,
        received_at_ns=min(c.received_at_ns for c in contexts),
    )


class BatchProcessor(Processor):
    signals = frozenset(Signal)
    # It never changes a request; what it forwards carries the concatenated wires (_take).
    keeps_wire = True

    def __init__(self, config: BatchProcessorConfig, settings: ComponentSettings) -> None:
        super().__init__(config, settings)
        self.config: BatchProcessorConfig = config
        self._size = config.send_batch_size
        self._max = config.send_batch_max_size
        self._timeout = config.timeout
        self._lock = threading.Lock()
        self._buffers: dict[_BufferKey, _Buffer] = {}
        self._pending_items = 0
        self._timer: asyncio.Task[None] | None = None
        self._closed = False
        metrics = _METRICS.get(settings.telemetry.registry, _Metrics)
        pid = settings.component_id
        self._pending_gauge = metrics.pending.labels(pid)
        self._send_size = {s: metrics.send_size.labels(pid, s.value) for s in Signal}
        self._sends = {t: metrics.sends.labels(pid, t) for t in ("size", "timeout", "shutdown")}

    # --- pipeline interface ----------------------------------------------------------

    def process_traces(self, batch: ExportTraceServiceRequest, context: RequestContext) -> Batch | None:
        self._accept(Signal.TRACES, batch, context)
        return None

    def process_metrics(self, batch: ExportMetricsServiceRequest, context: RequestContext) -> Batch | None:
        self._accept(Signal.METRICS, batch, context)
        return None

    def process_logs(self, batch: ExportLogsServiceRequest, context: RequestContext) -> Batch | None:
        self._accept(Signal.LOGS, batch, context)
        return None

    async def start(self) -> None:
        if self._timeout > 0 and self._timer is None:
            self._timer = asyncio.get_running_loop().create_task(
                self._flush_on_timeout(), name=f"{self.settings.component_id}-timeout"
            )

    async def shutdown(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        with self._lock:
            ready = []
            for key in list(self._buffers):
                ready.extend(self._take_ready(key, self._buffers[key], force=True))
        self._send(ready, "shutdown")

    @property
    def pending_items(self) -> int:
        return self._pending_items

    # --- buffering ---------------------------------------------------------------------

    def _accept(self, signal: Signal, batch: Batch, context: RequestContext) -> None:
        if not getattr(batch, _RESOURCE_FIELDS[signal]):
            return  # an empty request has nothing to forward
        items = count_items(batch)
        key = (signal, context.tenant, context.actor, context.roles)
        with self._lock:
            buffer = self._buffers.get(key)
            if buffer is None:
                buffer = self._buffers[key] = _Buffer(deadline=time.monotonic() + self._timeout)
            buffer.entries.append(
                _Pending(batch, items, context, context.wire_pieces_for(batch), context.wire_from_client)
            )
            buffer.items += items
            self._pending_items += items
            # After shutdown nothing waits: a straggler goes straight through.
            ready = self._take_ready(key, buffer, force=self._closed)
        self._send(ready, "shutdown" if self._closed else "size")

    def _take_ready(self, key: _BufferKey, buffer: _Buffer, force: bool) -> list[_Ready]:
        """Batches to send now from ``buffer``; called with the lock held."""
        ready: list[_Ready] = []
        while buffer.entries and (force or self._timeout == 0 or buffer.items >= self._size):
            ready.append(self._take(key[0], buffer))
        if not buffer.entries:
            del self._buffers[key]
        elif ready:
            buffer.deadline = time.monotonic() + self._timeout
        self._pending_gauge.set(self._pending_items)
        return ready

    def _take(self, signal: Signal, buffer: _Buffer) -> _Ready:
        """The next batch of at most ``send_batch_max_size`` items from the buffer's front."""
        budget = self._max if 0 < self._max < buffer.items else buffer.items
        total = budget
        parts: list[Batch] = []
        contexts: list[RequestContext] = []
        wires: list[tuple[bytes, ...] | None] = []
        from_client = False
        entries = buffer.entries
        # Requests without items ride along with the batch they arrived in.
        while entries and (budget > 0 or entries[0].items == 0):
            entry = entries[0]
            contexts.append(entry.context)
            if entry.items <= budget:
                parts.append(entry.batch)
                wires.append(entry.wire)
                from_client |= entry.wire_from_client
                budget -= entry.items
                buffer.items -= entry.items
                self._pending_items -= entry.items
                entries.popleft()
            else:
                head, tail = split(entry.batch, budget)
                parts.append(head)
                wires.append(None)
                entry.batch, entry.wire = tail, None
                entry.items -= budget
                buffer.items -= budget
                self._pending_items -= budget
                budget = 0
        if len(parts) == 1:
            merged = parts[0]
        else:
            merged = REQUEST_TYPES[signal]()
            for part in parts:
                merged.MergeFrom(part)  # concatenates the resource lists
        context = _merged_context(contexts)
        # Serialized requests concatenated are the serialization of their merge.
        context.set_wire(merged, wire_pieces(wires), from_client)
        return merged, context, total

    def _send(self, ready: list[_Ready], trigger: str) -> None:
        for batch, context, items in ready:
            self._send_size[signal_of(batch)].observe(items)
            self._sends[trigger].inc()
            self.forward(batch, context)

    async def _flush_on_timeout(self) -> None:
        while True:
            now = time.monotonic()
            ready: list[_Ready] = []
            with self._lock:
                next_deadline = now + self._timeout
                for key in list(self._buffers):
                    buffer = self._buffers[key]
                    if buffer.deadline <= now:
                        ready.extend(self._take_ready(key, buffer, force=True))
                    else:
                        next_deadline = min(next_deadline, buffer.deadline)
            try:
                self._send(ready, "timeout")
            except Exception:
                # The items were acknowledged already; the pipeline's forward counts its
                # own failures, this keeps the timer alive whatever happens downstream.
                log.exception("%s: forwarding a batch failed", self.settings.component_id)
            await asyncio.sleep(max(next_deadline - time.monotonic(), 0.001))


def create(config: BatchProcessorConfig, settings: ComponentSettings) -> BatchProcessor:
    return BatchProcessor(config, settings)
