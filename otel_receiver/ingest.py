"""What both transports share: bounded decompression, decoding, validation, admission.

The error types map one to one onto the OTLP spec's responses: ``InvalidRequest`` ->
400 / INVALID_ARGUMENT, ``RequestTooLarge`` -> 413 / RESOURCE_EXHAUSTED (no retry
info), ``Throttled`` -> 503 + Retry-After / UNAVAILABLE + RetryInfo,
``Unauthenticated`` -> 401 / UNAUTHENTICATED. Messages name what is wrong but never
quote the body: it may hold exactly the PII we exist to remove.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_receiver.attributes import Attributes, remove_prefixed
from otel_receiver.auth import Authenticator, AuthError
from otel_receiver.component import REQUEST_TYPES, Batch, Processor, RequestContext, Signal, count_items
from otel_receiver.pipeline import Pipeline, ProcessorError, fan_out
from otel_receiver.telemetry import SelfTelemetry
from semconv.attributes import AUDIT_PREFIX

log = logging.getLogger("otel_receiver.ingest")

RETRY_AFTER_SECONDS = 1
_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)
_AUDIT_PREFIX_BYTES = AUDIT_PREFIX.encode()


class IngestError(Exception):
    reason = "error"


class InvalidRequest(IngestError):
    reason = "invalid"


class RequestTooLarge(IngestError):
    reason = "too_large"


class Throttled(IngestError):
    reason = "queue_full"

    def __init__(self, message: str, retry_after: int = RETRY_AFTER_SECONDS) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Draining(Throttled):
    reason = "shutting_down"


class Unauthenticated(IngestError):
    reason = "unauthenticated"


class InternalError(IngestError):
    reason = "processor_error"


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """Decompress gzip (all members) without ever holding more than ``limit`` bytes."""
    out: list[bytes] = []
    total = 0
    rest = data
    while rest:
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        chunk_in = rest
        while True:
            try:
                piece = d.decompress(chunk_in, limit - total + 1)
            except zlib.error as e:
                raise InvalidRequest(f"invalid gzip body: {e}") from None
            total += len(piece)
            if total > limit:
                raise RequestTooLarge(f"decompressed request exceeds the limit of {limit} bytes")
            out.append(piece)
            if d.eof:
                break
            chunk_in = d.unconsumed_tail
            if not chunk_in and not piece:
                raise InvalidRequest("invalid gzip body: truncated stream")
        rest = d.unused_data
    return b"".join(out)


def decode_protobuf(signal: Signal, body: bytes) -> Batch:
    msg = REQUEST_TYPES[signal]()
    try:
        msg.ParseFromString(body)
    except DecodeError as e:
        detail = str(e) or "malformed protobuf"
        raise InvalidRequest(f"cannot decode {msg.DESCRIPTOR.name}: {detail}") from None
    except RecursionError:
        raise InvalidRequest(f"cannot decode {msg.DESCRIPTOR.name}: nesting too deep") from None
    return msg


@dataclass(slots=True)
class IngestResult:
    accepted: int
    rejected: int = 0
    message: str = ""


def _reject_invalid_spans(req: ExportTraceServiceRequest) -> tuple[int, str]:
    """Remove spans whose ids break the OTLP spec; they could never be joined or stored."""
    rejected = 0
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            bad = []
            for i, span in enumerate(ss.spans):
                tid = span.trace_id
                sid = span.span_id
                if (
                    len(tid) != 16
                    or len(sid) != 8
                    or tid == _ZERO_TRACE_ID
                    or sid == _ZERO_SPAN_ID
                    or len(span.parent_span_id) not in (0, 8)
                ):
                    bad.append(i)
            for i in reversed(bad):
                del ss.spans[i]
            rejected += len(bad)
    if rejected:
        return rejected, (
            f"{rejected} spans rejected: trace_id must be 16 non-zero bytes, span_id 8 non-zero bytes, "
            "parent_span_id empty or 8 bytes"
        )
    return 0, ""


def _reject_invalid_log_ids(req: ExportLogsServiceRequest) -> tuple[int, str]:
    rejected = 0
    for rl in req.resource_logs:
        for sl in rl.scope_logs:
            bad = [
                i
                for i, rec in enumerate(sl.log_records)
                if len(rec.trace_id) not in (0, 16) or len(rec.span_id) not in (0, 8)
            ]
            for i in reversed(bad):
                del sl.log_records[i]
            rejected += len(bad)
    if rejected:
        return (
            rejected,
            f"{rejected} log records rejected: trace_id must be empty or 16 bytes, span_id empty or 8",
        )
    return 0, ""


def _attribute_lists(msg: Batch) -> Iterator[Attributes]:
    """Every attribute list of a request: resources, scopes, items, events, links, points."""
    if isinstance(msg, ExportTraceServiceRequest):
        groups: Iterable[tuple[Any, Any, str]] = (
            (r.resource, r.scope_spans, "spans") for r in msg.resource_spans
        )
    elif isinstance(msg, ExportLogsServiceRequest):
        groups = ((r.resource, r.scope_logs, "log_records") for r in msg.resource_logs)
    else:
        groups = ((r.resource, r.scope_metrics, "metrics") for r in msg.resource_metrics)
    for resource, scopes, field in groups:
        yield resource.attributes
        for scope in scopes:
            yield scope.scope.attributes
            for item in getattr(scope, field):
                if field == "metrics":
                    kind = item.WhichOneof("data")
                    if kind is not None:
                        yield from (point.attributes for point in getattr(item, kind).data_points)
                    continue
                yield item.attributes
                if field == "spans":
                    yield from (event.attributes for event in item.events)
                    yield from (link.attributes for link in item.links)


def remove_reserved_attributes(msg: Batch) -> int:
    """Delete every ``audit.*`` attribute anywhere in a request; returns how many.

    Tenant and actor are written from the authenticated request only (DESIGN.md,
    "Audit"); what a client sends under those names would otherwise be read downstream
    (the ``tenant_id`` label, ``genai_calls.TenantId``) as if it were authenticated.
    """
    return sum(remove_prefixed(attributes, AUDIT_PREFIX) for attributes in _attribute_lists(msg))


def _prescanners(signal: Signal, pipelines: Sequence[Pipeline]) -> list[Processor]:
    """The processors of ``pipelines`` whose prescans can serve them: each sees the wire
    as received unless a processor before it changed it, and none after one that drops
    it (``keeps_wire`` False) ever does."""
    found: list[Processor] = []
    for pipeline in pipelines:
        for _, processor in pipeline.processors:
            if signal in processor.signals and type(processor).prescan is not Processor.prescan:
                found.append(processor)
            if not processor.keeps_wire:
                break
    return found


class Ingest:
    """Entry point of one receiver: decoded requests in, pipelines fed."""

    def __init__(
        self,
        receiver_id: str,
        pipelines: Mapping[Signal, Sequence[Pipeline]],
        telemetry: SelfTelemetry,
        authenticator: Authenticator | None = None,
        trust_audit_attributes: bool = False,
    ) -> None:
        self.receiver_id = receiver_id
        self.pipelines = pipelines
        self.telemetry = telemetry
        self.authenticator = authenticator
        self.trust_audit_attributes = trust_audit_attributes
        self.draining = False
        self._prescanners = {signal: _prescanners(signal, pls) for signal, pls in pipelines.items()}

    def authenticate(self, headers: Callable[[], Mapping[str, str]], context: RequestContext) -> None:
        """Put the request's principal into ``context``; ``headers`` (lowercase names) is
        called only when auth is configured, so unauthenticated receivers pay nothing."""
        if self.authenticator is None:
            return
        try:
            p = self.authenticator.authenticate(headers())
        except AuthError as e:
            raise Unauthenticated(str(e)) from None
        context.tenant, context.actor, context.roles = p.tenant, p.actor, p.roles

    def _refuse_if_draining(self, signal: Signal, transport: str) -> None:
        if self.draining:
            self.telemetry.requests.labels(transport, signal.value, "draining").inc()
            raise Draining("the receiver is shutting down; retry against another instance or later")

    def start_prescans(self, signal: Signal, wire: bytes) -> list[tuple[Processor, Awaitable[object]]]:
        """The processors' passes over a request's protobuf body that run off this thread
        (``Processor.prescan``), started before the body is decoded so that the two
        overlap. A request that then fails to decode leaves its passes unawaited: their
        results are dropped."""
        started = []
        for processor in self._prescanners.get(signal, ()):
            pending = processor.prescan(signal, wire)
            if pending is not None:
                started.append((processor, pending))
        return started

    async def finish_prescans(
        self, started: list[tuple[Processor, Awaitable[object]]], wire: bytes, context: RequestContext
    ) -> None:
        """Await the passes ``start_prescans`` began; their results go into ``context``."""
        prescans: dict[object, tuple[bytes, object]] = {}
        for processor, pending in started:
            prescans[processor] = (wire, await pending)
        context.prescans = prescans

    def check_admission(self, signal: Signal, transport: str) -> None:
        self._refuse_if_draining(signal, transport)
        for p in self.pipelines.get(signal, ()):
            if not p.has_room():
                self.telemetry.requests.labels(transport, signal.value, "throttled").inc()
                raise Throttled(f"exporter queues of pipeline {p.pipeline_id} are full; retry later")

    def accept(
        self, signal: Signal, msg: Batch, context: RequestContext, wire: bytes | None = None
    ) -> IngestResult:
        """Validate, process and enqueue an already decoded request (admission checked).

        ``wire`` is the protobuf body ``msg`` was decoded from, when there was one: a
        request whose bytes never spell ``audit.`` has no such key, and skips the walk
        that removes them (OTLP/JSON can escape a key's letters, so it always walks).
        Unless the checks here changed ``msg``, it travels on as ``context.wire``.
        """
        transport = context.transport
        # Again: shutdown may have begun while the body was read, and the processors may
        # have flushed already; spans accepted now could be acknowledged and then never
        # exported. From here to the enqueue nothing awaits, so the check holds.
        self._refuse_if_draining(signal, transport)
        started = time.perf_counter()
        # Only authenticated requests have a principal a client could impersonate; an
        # open receiver trusts its clients, and skips the body search (~0.4-0.9 us/span).
        if self.authenticator is not None and not self.trust_audit_attributes:
            if wire is None or _AUDIT_PREFIX_BYTES in wire:
                removed = remove_reserved_attributes(msg)
                if removed:
                    self.telemetry.removed_reserved_attributes.labels(transport, signal.value).inc(removed)
                    wire = None
            context.may_hold_audit_attributes = False
        rejected, message = 0, ""
        if signal is Signal.TRACES:
            assert isinstance(msg, ExportTraceServiceRequest)
            rejected, message = _reject_invalid_spans(msg)
        elif signal is Signal.LOGS:
            assert isinstance(msg, ExportLogsServiceRequest)
            rejected, message = _reject_invalid_log_ids(msg)
        n = count_items(msg)
        if rejected:
            self.telemetry.refused_items.labels(transport, signal.value, "invalid_ids").inc(rejected)
            wire = None
        context.set_wire(msg, wire, from_client=True)
        pipelines = self.pipelines.get(signal, ())
        if n:
            try:
                fan_out(pipelines, msg, context)
            except ProcessorError as e:
                # the request itself is counted by refuse(), called by the transport
                self.telemetry.refused_items.labels(transport, signal.value, "processor_error").inc(n)
                raise InternalError(str(e)) from None
            self.telemetry.received_items.labels(transport, signal.value).inc(n)
        self.telemetry.requests.labels(transport, signal.value, "ok" if not rejected else "partial").inc()
        self.telemetry.batch_latency.labels(signal.value).observe(time.perf_counter() - started)
        return IngestResult(n, rejected, message)

    def refuse(self, signal: Signal, transport: str, err: IngestError) -> None:
        self.telemetry.requests.labels(transport, signal.value, err.reason).inc()
