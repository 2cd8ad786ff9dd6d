"""The ``audit`` processor: stamps the authenticated principal on every item.

Spans and log records get ``audit.tenant.id`` / ``audit.actor.id`` as item attributes,
because that is where the readers look per item (the ``genai_calls`` view's
``TenantId``, the Prometheus ``tenant_id`` label) and a batch queued for export mixes
requests of several tenants. Metric requests get them on the resource: a data point
attribute would split every series by tenant even where the exporter does not ask.

The values never come from the request's own attributes: a receiver with auth removes
any ``audit.*`` a client sends before processors run (unless it is configured to trust
them, behind a tier that wrote them itself; those are kept, not overwritten).
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otel_receiver.attributes import Attributes, set_str
from otel_receiver.component import Batch, ComponentSettings, Processor, RequestContext, Signal
from processors.audit.config import AuditConfig
from semconv import attributes as a

_MAX_ENCODED = 1024  # distinct principals whose encoded attributes are kept
Principal = tuple[tuple[str, str], ...]  # the (audit key, value) pairs to write


class AuditProcessor(Processor):
    signals = frozenset(Signal)

    def __init__(self, config: AuditConfig, settings: ComponentSettings) -> None:
        super().__init__(config, settings)
        self.cfg = config
        # (Span or LogRecord, principal) -> its attributes as an encoded fragment of that
        # message: merging those bytes appends every KeyValue in one C call per item.
        self._encoded_by_principal: dict[tuple[type[Span] | type[LogRecord], Principal], bytes] = {}

    def _principal(self, context: RequestContext) -> Principal:
        pairs = []
        if self.cfg.tenant and context.tenant:
            pairs.append((a.AUDIT_TENANT_ID, context.tenant))
        if self.cfg.actor and context.actor:
            pairs.append((a.AUDIT_ACTOR_ID, context.actor))
        return tuple(pairs)

    def _encoded(self, message_type: type[Span] | type[LogRecord], pairs: Principal) -> bytes:
        key = (message_type, pairs)
        encoded = self._encoded_by_principal.get(key)
        if encoded is None:
            message = message_type()
            for k, v in pairs:
                kv = message.attributes.add()
                kv.key = k
                kv.value.string_value = v
            encoded = message.SerializeToString()
            if len(self._encoded_by_principal) >= _MAX_ENCODED:
                self._encoded_by_principal.clear()
            self._encoded_by_principal[key] = encoded
        return encoded

    def process_traces(self, batch: ExportTraceServiceRequest, context: RequestContext) -> Batch | None:
        spans = (span for rs in batch.resource_spans for ss in rs.scope_spans for span in ss.spans)
        self._stamp(spans, Span, context)
        return batch

    def process_logs(self, batch: ExportLogsServiceRequest, context: RequestContext) -> Batch | None:
        records = (r for rl in batch.resource_logs for sl in rl.scope_logs for r in sl.log_records)
        self._stamp(records, LogRecord, context)
        return batch

    def _stamp(
        self,
        items: Iterable[Span | LogRecord],
        message_type: type[Span] | type[LogRecord],
        context: RequestContext,
    ) -> None:
        pairs = self._principal(context)
        if not pairs:
            return
        encoded = self._encoded(message_type, pairs)
        check = context.may_hold_audit_attributes
        for item in items:
            if check and _holds_audit(item.attributes):
                _fill_missing(item.attributes, pairs)
            else:
                item.MergeFromString(encoded)

    def process_metrics(self, batch: ExportMetricsServiceRequest, context: RequestContext) -> Batch | None:
        pairs = self._principal(context)
        if not pairs:
            return batch
        for rm in batch.resource_metrics:
            _fill_missing(rm.resource.attributes, pairs)
        return batch


def _holds_audit(attributes: Attributes) -> bool:
    return any(kv.key.startswith(a.AUDIT_PREFIX) for kv in attributes)


def _fill_missing(attributes: Attributes, pairs: Principal) -> None:
    """Add each pair whose key is absent: values a trusted upstream tier wrote are kept."""
    present = {kv.key for kv in attributes}
    for key, value in pairs:
        if key not in present:
            set_str(attributes, key, value)


__all__ = ["AuditProcessor"]
