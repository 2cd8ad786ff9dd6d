"""Readable text of OTLP requests for the debug exporter (normal and detailed verbosity).

The layout follows the Collector's debug exporter so its users read it at a glance;
it is for people, not parsers (use the file exporter for machine-readable output).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import orjson
from google.protobuf.message import Message
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from otel_receiver.attributes import any_value_to_python
from otel_receiver.component import Batch

_VALUE_TAGS = {
    "string_value": "Str",
    "bool_value": "Bool",
    "int_value": "Int",
    "double_value": "Double",
    "bytes_value": "Bytes",
    "array_value": "Slice",
    "kvlist_value": "Map",
    "string_value_strindex": "StrIndex",
}
_SPAN_KINDS = {
    Span.SPAN_KIND_UNSPECIFIED: "Unspecified",
    Span.SPAN_KIND_INTERNAL: "Internal",
    Span.SPAN_KIND_SERVER: "Server",
    Span.SPAN_KIND_CLIENT: "Client",
    Span.SPAN_KIND_PRODUCER: "Producer",
    Span.SPAN_KIND_CONSUMER: "Consumer",
}
_STATUS_CODES = {
    Status.STATUS_CODE_UNSET: "Unset",
    Status.STATUS_CODE_OK: "Ok",
    Status.STATUS_CODE_ERROR: "Error",
}


def _json_default(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError


def any_value(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    if kind is None:
        return "Empty()"
    inner = any_value_to_python(value)
    if kind in ("array_value", "kvlist_value"):
        text = orjson.dumps(inner, default=_json_default).decode()
    elif kind == "bytes_value":
        text = value.bytes_value.hex()
    elif kind == "bool_value":
        text = "true" if inner else "false"
    else:
        text = str(inner)
    return f"{_VALUE_TAGS.get(kind, kind)}({text})"


def timestamp(unix_nano: int) -> str:
    if unix_nano == 0:
        return "0"
    seconds, nanos = divmod(unix_nano, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{nanos:09d} +0000 UTC"


def _attributes(lines: list[str], title: str, attributes: Iterable[KeyValue], indent: str = "") -> None:
    attributes = list(attributes)
    if not attributes:
        return
    lines.append(f"{indent}{title}:")
    for kv in attributes:
        lines.append(f"{indent}     -> {kv.key}: {any_value(kv.value)}")


def _inline_attributes(attributes: Iterable[KeyValue]) -> str:
    return " ".join(f"{kv.key}={any_value(kv.value)}" for kv in attributes)


def _resource(lines: list[str], index: int, kind: str, resource: Resource, schema_url: str) -> None:
    lines.append(f"{kind} #{index}")
    lines.append(f"Resource SchemaURL: {schema_url}")
    _attributes(lines, "Resource attributes", resource.attributes)


def _scope(lines: list[str], index: int, kind: str, scope: InstrumentationScope, schema_url: str) -> None:
    lines.append(f"{kind} #{index}")
    lines.append(f"{kind} SchemaURL: {schema_url}")
    lines.append(f"InstrumentationScope {scope.name} {scope.version}".rstrip())
    _attributes(lines, "InstrumentationScope attributes", scope.attributes)


def _detailed_span(lines: list[str], index: int, span: Span) -> None:
    lines.append(f"Span #{index}")
    lines.append(f"    Trace ID       : {span.trace_id.hex()}")
    lines.append(f"    Parent ID      : {span.parent_span_id.hex()}")
    lines.append(f"    ID             : {span.span_id.hex()}")
    lines.append(f"    Name           : {span.name}")
    lines.append(f"    Kind           : {_SPAN_KINDS.get(span.kind, str(span.kind))}")
    lines.append(f"    Start time     : {timestamp(span.start_time_unix_nano)}")
    lines.append(f"    End time       : {timestamp(span.end_time_unix_nano)}")
    lines.append(f"    Status code    : {_STATUS_CODES.get(span.status.code, str(span.status.code))}")
    lines.append(f"    Status message : {span.status.message}")
    if span.trace_state:
        lines.append(f"    TraceState     : {span.trace_state}")
    _attributes(lines, "Attributes", span.attributes)
    if span.events:
        lines.append("Events:")
        for n, event in enumerate(span.events):
            lines.append(f"SpanEvent #{n}")
            lines.append(f"     -> Name: {event.name}")
            lines.append(f"     -> Timestamp: {timestamp(event.time_unix_nano)}")
            _attributes(lines, "     -> Attributes", event.attributes)
    if span.links:
        lines.append("Links:")
        for n, link in enumerate(span.links):
            lines.append(f"SpanLink #{n}")
            lines.append(f"     -> Trace ID: {link.trace_id.hex()}")
            lines.append(f"     -> ID: {link.span_id.hex()}")
            _attributes(lines, "     -> Attributes", link.attributes)


def _detailed_metric(lines: list[str], index: int, metric: Metric) -> None:
    kind = metric.WhichOneof("data")
    lines.append(f"Metric #{index}")
    lines.append("Descriptor:")
    lines.append(f"     -> Name: {metric.name}")
    lines.append(f"     -> Description: {metric.description}")
    lines.append(f"     -> Unit: {metric.unit}")
    lines.append(f"     -> DataType: {kind or 'Empty'}")
    if kind is None:
        return
    data = getattr(metric, kind)
    for field in ("is_monotonic", "aggregation_temporality"):
        if data.DESCRIPTOR.fields_by_name.get(field) is not None:
            lines.append(f"     -> {field}: {getattr(data, field)}")
    for n, point in enumerate(data.data_points):
        lines.append(f"{type(point).__name__} #{n}")
        _attributes(lines, "Data point attributes", point.attributes)
        lines.append(f"StartTimestamp: {timestamp(point.start_time_unix_nano)}")
        lines.append(f"Timestamp: {timestamp(point.time_unix_nano)}")
        for field, value in point.ListFields():
            if field.name in ("attributes", "start_time_unix_nano", "time_unix_nano", "exemplars"):
                continue
            lines.append(f"{field.name}: {_field_text(value)}")


def _field_text(value: object) -> str:
    if isinstance(value, Message):
        return " ".join(f"{f.name}={_field_text(v)}" for f, v in value.ListFields())
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        return str(list(value))
    return str(value)


def _severity(number: int) -> str:
    try:
        return SeverityNumber.Name(number).removeprefix("SEVERITY_NUMBER_")
    except ValueError:
        return str(number)


def detailed(batch: Batch) -> str:
    lines: list[str] = []
    if isinstance(batch, ExportTraceServiceRequest):
        for r, rs in enumerate(batch.resource_spans):
            _resource(lines, r, "ResourceSpans", rs.resource, rs.schema_url)
            for s, ss in enumerate(rs.scope_spans):
                _scope(lines, s, "ScopeSpans", ss.scope, ss.schema_url)
                for n, span in enumerate(ss.spans):
                    _detailed_span(lines, n, span)
    elif isinstance(batch, ExportMetricsServiceRequest):
        for r, rm in enumerate(batch.resource_metrics):
            _resource(lines, r, "ResourceMetrics", rm.resource, rm.schema_url)
            for s, sm in enumerate(rm.scope_metrics):
                _scope(lines, s, "ScopeMetrics", sm.scope, sm.schema_url)
                for n, metric in enumerate(sm.metrics):
                    _detailed_metric(lines, n, metric)
    else:
        for r, rl in enumerate(batch.resource_logs):
            _resource(lines, r, "ResourceLogs", rl.resource, rl.schema_url)
            for s, sl in enumerate(rl.scope_logs):
                _scope(lines, s, "ScopeLogs", sl.scope, sl.schema_url)
                for n, record in enumerate(sl.log_records):
                    lines.append(f"LogRecord #{n}")
                    lines.append(f"ObservedTimestamp: {timestamp(record.observed_time_unix_nano)}")
                    lines.append(f"Timestamp: {timestamp(record.time_unix_nano)}")
                    lines.append(f"SeverityText: {record.severity_text}")
                    lines.append(
                        f"SeverityNumber: {_severity(record.severity_number)}({record.severity_number})"
                    )
                    if record.event_name:
                        lines.append(f"EventName: {record.event_name}")
                    lines.append(f"Body: {any_value(record.body)}")
                    _attributes(lines, "Attributes", record.attributes)
                    lines.append(f"Trace ID: {record.trace_id.hex()}")
                    lines.append(f"Span ID: {record.span_id.hex()}")
                    lines.append(f"Flags: {record.flags}")
    return "\n".join(lines)


def normal(batch: Batch) -> str:
    """One line per span, data point or log record."""
    lines: list[str] = []
    if isinstance(batch, ExportTraceServiceRequest):
        for rs in batch.resource_spans:
            lines.append(f"ResourceSpans {_inline_attributes(rs.resource.attributes)}".rstrip())
            for ss in rs.scope_spans:
                lines.append(f"ScopeSpans {ss.scope.name} {ss.scope.version}".rstrip())
                for span in ss.spans:
                    duration_ms = (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
                    status = _STATUS_CODES.get(span.status.code, str(span.status.code))
                    lines.append(
                        f"{span.name} {span.trace_id.hex()} {span.span_id.hex()} "
                        f"{_SPAN_KINDS.get(span.kind, str(span.kind))} {duration_ms:.3f}ms {status} "
                        f"{_inline_attributes(span.attributes)}".rstrip()
                    )
    elif isinstance(batch, ExportMetricsServiceRequest):
        for rm in batch.resource_metrics:
            lines.append(f"ResourceMetrics {_inline_attributes(rm.resource.attributes)}".rstrip())
            for sm in rm.scope_metrics:
                lines.append(f"ScopeMetrics {sm.scope.name} {sm.scope.version}".rstrip())
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    if kind is None:
                        continue
                    for point in getattr(metric, kind).data_points:
                        value = _point_value(point)
                        lines.append(
                            f"{metric.name}{{{_inline_attributes(point.attributes)}}} {kind} {value}"
                        )
    else:
        for rl in batch.resource_logs:
            lines.append(f"ResourceLog {_inline_attributes(rl.resource.attributes)}".rstrip())
            for sl in rl.scope_logs:
                lines.append(f"ScopeLog {sl.scope.name} {sl.scope.version}".rstrip())
                for record in sl.log_records:
                    severity = record.severity_text or _severity(record.severity_number)
                    attributes = _inline_attributes(record.attributes)
                    lines.append(f"{severity} {any_value(record.body)} {attributes}".rstrip())
    return "\n".join(lines)


def _point_value(point: Message) -> str:
    fields = point.DESCRIPTOR.fields_by_name
    if "value" in {o.name for o in point.DESCRIPTOR.oneofs}:
        which = point.WhichOneof("value")
        return str(getattr(point, which)) if which else ""
    parts = []
    for name in ("count", "sum", "min", "max"):
        field = fields.get(name)
        if field is not None and (not field.has_presence or point.HasField(name)):
            parts.append(f"{name}={getattr(point, name)}")
    return " ".join(parts)
