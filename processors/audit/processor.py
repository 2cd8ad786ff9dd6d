"""The ``audit`` processor: who sent each item, what they did, and an audit trail.

Spans and log records get ``audit.tenant.id`` / ``audit.actor.id`` as item attributes,
because that is where the readers look per item (the ``genai_calls`` view's
``TenantId``, the Prometheus ``tenant_id`` label) and a batch queued for export mixes
requests of several tenants. Metric requests get them on the resource: a data point
attribute would split every series by tenant even where the exporter does not ask.

GenAI spans also get ``audit.action`` (the operation: ``chat``, ``execute_tool``,
``invoke_agent``, ...) and ``audit.resource.type`` (``model``, ``tool``, ``agent``).

With a trail (``trail.exporter``), each authenticated request becomes an ``ingest``
record of the hash-chained ``audit_log`` and each GenAI span one record of its own
action; items carry the ``audit.record.id`` of their record (metric resources do not:
a per-request value there would make a new Prometheus ``target_info`` series per request).

The values never come from the request's own attributes: a receiver with auth removes
any ``audit.*`` a client sends before processors run (unless it is configured to trust
them, behind a tier that wrote them itself; those are kept, not overwritten).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from typing import Final

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otel_receiver.attributes import Attributes, set_str
from otel_receiver.component import (
    Batch,
    ComponentSettings,
    ComponentStartError,
    Processor,
    RequestContext,
    Signal,
    count_items,
)
from otel_receiver.encoded_attributes import LOG_RECORD_ATTRIBUTES, SPAN_ATTRIBUTES, string_attribute
from processors.audit.config import AuditConfig, TrailConfig
from processors.audit.trail import AnchorFile, AuditEntry, AuditSink, AuditTrail
from semconv import attributes as a

_MAX_ENCODED = 1024  # distinct principals (and actions) whose encoded attributes are kept
Principal = tuple[tuple[str, str], ...]  # the (audit key, value) pairs to write

ACTION_INGEST: Final = "ingest"
# What each GenAI operation acts on, and the attribute naming that resource.
_TOOL = ("tool", (a.GEN_AI_TOOL_NAME,))
_AGENT = ("agent", (a.GEN_AI_AGENT_NAME, a.GEN_AI_AGENT_ID))
_MODEL = ("model", (a.GEN_AI_REQUEST_MODEL, a.GEN_AI_RESPONSE_MODEL))
_RESOURCE_OF_OPERATION: Final = {
    a.OP_EXECUTE_TOOL: _TOOL,
    a.OP_INVOKE_AGENT: _AGENT,
    a.OP_CREATE_AGENT: _AGENT,
}
_SCANNED: Final = frozenset(
    {a.GEN_AI_OPERATION_NAME, a.GEN_AI_PROVIDER_NAME, *_TOOL[1], *_AGENT[1], *_MODEL[1]}
)


def _resource(operation: str, found: dict[str, str]) -> tuple[str, str]:
    """(resource type, resource id) a GenAI operation acted on."""
    kind, keys = _RESOURCE_OF_OPERATION.get(operation, _MODEL)
    for key in keys:
        value = found.get(key)
        if value:
            return kind, value
    return kind, ""


# --- shared trails: every audit processor writing to one exporter extends one chain ----

_trails: dict[int, tuple[AuditTrail, int]] = {}  # id(sink) -> (trail, users)
_trails_lock = threading.Lock()


def _acquire_trail(sink: AuditSink, cfg: TrailConfig, settings: ComponentSettings) -> AuditTrail:
    with _trails_lock:
        held = _trails.get(id(sink))
        if held is not None:
            trail, users = held
            _trails[id(sink)] = (trail, users + 1)
            return trail
        trail = AuditTrail(
            sink,
            settings.telemetry.registry,
            chain_id=cfg.chain_id,
            flush_interval=cfg.flush_interval,
            max_pending=cfg.max_pending,
            anchor_file=AnchorFile(path) if (path := cfg.anchor_path(settings.config_dir)) else None,
            anchor_interval=cfg.anchor_interval,
        )
        trail.start()
        _trails[id(sink)] = (trail, 1)
        return trail


def _release_trail(trail: AuditTrail) -> bool:
    """True when the caller was its last user (and must close it)."""
    with _trails_lock:
        _, users = _trails[id(trail.sink)]
        if users > 1:
            _trails[id(trail.sink)] = (trail, users - 1)
            return False
        del _trails[id(trail.sink)]
        return True


class AuditProcessor(Processor):
    signals = frozenset(Signal)

    def __init__(self, config: AuditConfig, settings: ComponentSettings) -> None:
        super().__init__(config, settings)
        self.cfg = config
        self.trail: AuditTrail | None = None
        # (attributes field, principal) -> its attributes as an encoded fragment of a Span
        # or LogRecord: merging those bytes appends every KeyValue in one C call per item.
        self._encoded_by_principal: dict[tuple[int, Principal], bytes] = {}
        self._last_record: tuple[str, int, bytes] = ("", 0, b"")  # record id, field, encoding

    async def start(self) -> None:
        name = self.cfg.trail.exporter
        if name is None:
            return
        host = self.settings.host
        if host is None:
            raise ComponentStartError(
                f"{self.settings.component_id}: trail.exporter needs a running receiver"
            )
        try:
            sink = host.exporter(name)
        except KeyError as e:
            raise ComponentStartError(f"{self.settings.component_id}: trail.exporter: {e.args[0]}") from None
        if not isinstance(sink, AuditSink):
            raise ComponentStartError(
                f"{self.settings.component_id}: trail.exporter {name!r} cannot keep audit records "
                "(use a clickhouse exporter)"
            )
        self.trail = await asyncio.to_thread(_acquire_trail, sink, self.cfg.trail, self.settings)

    async def shutdown(self) -> None:
        trail, self.trail = self.trail, None
        if trail is not None and _release_trail(trail):
            await asyncio.to_thread(trail.close)

    def has_room(self) -> bool:
        return self.trail is None or self.trail.has_room()

    def _principal(self, context: RequestContext) -> Principal:
        pairs = []
        if self.cfg.tenant and context.tenant:
            pairs.append((a.AUDIT_TENANT_ID, context.tenant))
        if self.cfg.actor and context.actor:
            pairs.append((a.AUDIT_ACTOR_ID, context.actor))
        return tuple(pairs)

    def _encoded(self, field: int, pairs: Principal) -> bytes:
        key = (field, pairs)
        encoded = self._encoded_by_principal.get(key)
        if encoded is None:
            encoded = b"".join(string_attribute(k, v, field) for k, v in pairs)
            if len(self._encoded_by_principal) >= _MAX_ENCODED:
                self._encoded_by_principal.clear()
            self._encoded_by_principal[key] = encoded
        return encoded

    def _ingest_entry(
        self, signal: Signal, batch: Batch, context: RequestContext, **extra: int
    ) -> AuditEntry:
        details: dict[str, object] = {"items": count_items(batch), "transport": context.transport, **extra}
        if context.client_address:
            details["client_address"] = context.client_address
        if context.roles:
            details["roles"] = list(context.roles)
        return AuditEntry(
            context.received_at_ns,
            ACTION_INGEST,
            signal.value,
            tenant=context.tenant or "",
            actor=context.actor or "",
            details=orjson.dumps(details).decode(),
        )

    # --- traces ------------------------------------------------------------------------

    def process_traces(self, batch: ExportTraceServiceRequest, context: RequestContext) -> Batch | None:
        pairs = self._principal(context)
        if not pairs:
            return batch
        spans = [span for rs in batch.resource_spans for ss in rs.scope_spans for span in ss.spans]
        trail = self.trail
        genai_records = trail is not None and self.cfg.trail.genai_records
        if not (self.cfg.genai_actions or genai_records):
            record = None
            if trail is not None:
                record = trail.append([self._ingest_entry(Signal.TRACES, batch, context)])[0]
            self._stamp(spans, SPAN_ATTRIBUTES, pairs, context, record)
            return batch
        genai: list[tuple[Span, str, str, str, str]] = []  # span, operation, kind, id, provider
        plain: list[Span] = []
        for span in spans:
            found = {kv.key: kv.value.string_value for kv in span.attributes if kv.key in _SCANNED}
            operation = found.get(a.GEN_AI_OPERATION_NAME)
            if operation:
                kind, resource_id = _resource(operation, found)
                genai.append((span, operation, kind, resource_id, found.get(a.GEN_AI_PROVIDER_NAME, "")))
            else:
                plain.append(span)
        request_record: str | None = None
        own_records: list[str] = []
        if trail is not None:
            entries = [
                self._ingest_entry(
                    Signal.TRACES, batch, context, genai_records=len(genai) if genai_records else 0
                )
            ]
            if genai_records:
                tenant, actor = context.tenant or "", context.actor or ""
                for span, operation, kind, resource_id, provider in genai:
                    entries.append(
                        AuditEntry(
                            span.start_time_unix_nano or context.received_at_ns,
                            operation,
                            kind,
                            resource_id,
                            tenant,
                            actor,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            orjson.dumps({"provider": provider}).decode() if provider else "",
                        )
                    )
            ids = trail.append(entries)
            request_record = ids[0]
            own_records = ids[1:]
        self._stamp(plain, SPAN_ATTRIBUTES, pairs, context, request_record)
        for i, (span, operation, kind, _, _) in enumerate(genai):
            action: Principal = (
                ((a.AUDIT_ACTION, operation), (a.AUDIT_RESOURCE_TYPE, kind)) if self.cfg.genai_actions else ()
            )
            record = own_records[i] if own_records else request_record
            self._stamp((span,), SPAN_ATTRIBUTES, pairs + action, context, record)
        return batch

    # --- logs and metrics --------------------------------------------------------------

    def process_logs(self, batch: ExportLogsServiceRequest, context: RequestContext) -> Batch | None:
        pairs = self._principal(context)
        if not pairs:
            return batch
        record = None
        if self.trail is not None:
            record = self.trail.append([self._ingest_entry(Signal.LOGS, batch, context)])[0]
        records = (r for rl in batch.resource_logs for sl in rl.scope_logs for r in sl.log_records)
        self._stamp(records, LOG_RECORD_ATTRIBUTES, pairs, context, record)
        return batch

    def process_metrics(self, batch: ExportMetricsServiceRequest, context: RequestContext) -> Batch | None:
        pairs = self._principal(context)
        if not pairs:
            return batch
        if self.trail is not None:
            self.trail.append([self._ingest_entry(Signal.METRICS, batch, context)])
        for rm in batch.resource_metrics:
            _fill_missing(rm.resource.attributes, pairs)
        return batch

    def _stamp(
        self,
        items: Iterable[Span | LogRecord],
        field: int,
        pairs: Principal,
        context: RequestContext,
        record_id: str | None = None,
    ) -> None:
        """Append ``pairs`` (from the cache of encodings) and ``record_id`` (unique, encoded
        here) to every item; items that already hold audit attributes (from a trusted
        tier) only get the missing ones."""
        encoded = self._encoded(field, pairs)
        all_pairs = pairs
        if record_id is not None:
            # The GenAI spans of a request without records of their own all name the
            # request's record: encode it once.
            memo = self._last_record  # read once: requests may be processed on several threads
            if memo[0] != record_id or memo[1] != field:
                memo = (record_id, field, string_attribute(a.AUDIT_RECORD_ID, record_id, field))
                self._last_record = memo
            encoded += memo[2]
            all_pairs += ((a.AUDIT_RECORD_ID, record_id),)
        check = context.may_hold_audit_attributes
        for item in items:
            if check and _holds_audit(item.attributes):
                _fill_missing(item.attributes, all_pairs)
            else:
                item.MergeFromString(encoded)


def _holds_audit(attributes: Attributes) -> bool:
    return any(kv.key.startswith(a.AUDIT_PREFIX) for kv in attributes)


def _fill_missing(attributes: Attributes, pairs: Principal) -> None:
    """Add each pair whose key is absent: values a trusted upstream tier wrote are kept."""
    present = {kv.key for kv in attributes}
    for key, value in pairs:
        if key not in present:
            set_str(attributes, key, value)


__all__ = ["ACTION_INGEST", "AuditProcessor"]
