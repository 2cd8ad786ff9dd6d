"""Rows of ``otel_traces`` and ``otel_logs`` built in C (``_rows.c``) instead of in SQL.

The SQL path (``wire.py`` + ``columns.py``) sends ClickHouse the serialized request
and lets a materialized view build the rows: ~10 us of CPU per span for decoding and
column building, plus ~45 ms of query analysis per insert. The C encoder writes the
same rows as one block in ClickHouse's columnar ``Native`` format, with the GIL
released, and the insert goes straight into ``otel_traces`` (whose own views, the
trace-id lookup and ``genai_calls``, run as for any writer). Both paths store
identical rows (``tests/test_clickhouse_native_rows.py``).

Native, not RowBinary: reading RowBinary into the table's ``LowCardinality`` columns
(every attribute key) cost ClickHouse 85-105 ms per 10,000 spans, reading a Native
block with plain ``String`` columns and converting them whole 15 ms.

The extension is optional at install time (it needs a C compiler); without it the
exporter keeps the SQL path, and ``row_encoder: native`` is refused at start.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Final

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

_rows: ModuleType | None
try:
    from . import _rows
except ImportError:  # built without a C compiler
    _rows = None

# otel_traces' columns in the order the encoder writes them (the table's own order).
TRACES_COLUMNS: Final[tuple[str, ...]] = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
)


# otel_logs' columns but TimestampTime, which ClickHouse computes (its DEFAULT).
LOGS_COLUMNS: Final[tuple[str, ...]] = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "TraceFlags",
    "SeverityText",
    "SeverityNumber",
    "ServiceName",
    "Body",
    "ResourceSchemaUrl",
    "ResourceAttributes",
    "ScopeSchemaUrl",
    "ScopeName",
    "ScopeVersion",
    "ScopeAttributes",
    "LogAttributes",
    "EventName",
)

FORMAT: Final = "Native"


def available() -> bool:
    return _rows is not None


def trace_rows(
    parts: Sequence[ExportTraceServiceRequest], wire: Sequence[bytes] | None = None
) -> tuple[bytes, int]:
    """The rows of ``otel_traces`` (``TRACES_COLUMNS``) for the spans of ``parts`` as
    one ``Native`` block, and how many there are. ``wire``: the parts serialized (pieces
    to concatenate), when the caller has that (``RequestContext.wire``), protobuf's
    bytes or a client's. Raises ValueError on a malformed request, and on a client's
    encoding the parser would read differently from the encoder: a singular message
    (resource, scope, status, an attribute's value, a log body) split over several
    fields, which the parser merges."""
    if _rows is None:
        raise RuntimeError("the C row encoder is not built (install with a C compiler)")
    # Serialized one by one and encoded in one call: no merged copy of the requests.
    block, count = _rows.traces(list(wire) if wire is not None else [p.SerializeToString() for p in parts])
    return block, count


def log_rows(
    parts: Sequence[ExportLogsServiceRequest], wire: Sequence[bytes] | None = None
) -> tuple[bytes, int]:
    """The rows of ``otel_logs`` (``LOGS_COLUMNS``) for the log records of ``parts`` as
    one ``Native`` block, and how many there are."""
    if _rows is None:
        raise RuntimeError("the C row encoder is not built (install with a C compiler)")
    block, count = _rows.logs(list(wire) if wire is not None else [p.SerializeToString() for p in parts])
    return block, count
