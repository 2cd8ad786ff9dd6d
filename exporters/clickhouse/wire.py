"""How ClickHouse reads an OTLP request: a protobuf schema and the matching columns.

The exporter hands ClickHouse the serialized ``Export*ServiceRequest`` (one C call
in Python) and lets the engine decode it with its ``ProtobufSingle`` input format.
Decoding and the column building in SQL (``columns.py``) then run in C++ with the
GIL released, which is what makes 100k+ spans/s possible from Python: a Python
loop over every attribute of every span costs more than the whole insert.

The schema below is the OTLP wire format (field numbers from
opentelemetry-proto) restricted to the fields we store. ``oneof`` groups are named
``kind`` so that ``input_format_protobuf_oneof_presence`` tells which value field
was set (an ``int_value`` 0 and an unset value must not look alike). ``AnyValue``
is recursive in OTLP; a schema cannot be, so values are decoded to a fixed depth
(``ATTRIBUTE_LEVEL``, ``LOG_BODY_LEVEL``, ``LOG_ATTRIBUTE_LEVEL``) and anything deeper is kept as its raw
protobuf bytes. The schema is
sent with each insert (``format_schema_source='string'``), so a ClickHouse server
needs no schema file on disk.
"""

from __future__ import annotations

from typing import Final

from otel_receiver.component import Signal

# Decoded nesting levels of AnyValue: span, resource, scope and metric attributes
# hold primitives or arrays of primitives (the OTel attribute rules), so one level of
# array/map elements is enough. Log bodies carry structured data (maps of maps and
# arrays): three levels; log attributes may hold maps of arrays: two. Each level
# doubles the SQL that ClickHouse analyses on every insert, hence no more.
ATTRIBUTE_LEVEL: Final = 1
LOG_BODY_LEVEL: Final = 3
LOG_ATTRIBUTE_LEVEL: Final = 2


def _proto_values(max_level: int) -> str:
    """``Value0`` (elements kept as raw bytes) up to ``Value<max_level>`` and their pairs."""
    scalars = "string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4;"
    out = [
        "message Value0 {\n  oneof kind {\n    "
        + scalars
        + "\n    bytes array_value = 5; bytes kvlist_value = 6; bytes bytes_value = 7;\n  }\n}",
        "message KeyValue0 { string key = 1; Value0 value = 2; }",
    ]
    for level in range(1, max_level + 1):
        below = level - 1
        out += [
            f"message ArrayValue{level} {{ repeated Value{below} values = 1; }}",
            f"message KeyValueList{level} {{ repeated KeyValue{below} values = 1; }}",
            f"message Value{level} {{\n  oneof kind {{\n    {scalars}\n"
            f"    ArrayValue{level} array_value = 5; KeyValueList{level} kvlist_value = 6; "
            "bytes bytes_value = 7;\n  }\n}",
            f"message KeyValue{level} {{ string key = 1; Value{level} value = 2; }}",
        ]
    return "\n".join(out)


PROTO_SCHEMA: Final = (
    (
        'syntax = "proto3";\n'
        + _proto_values(max(LOG_BODY_LEVEL, LOG_ATTRIBUTE_LEVEL))
        + """
message KeyValue { string key = 1; Value1 value = 2; }
message Resource { repeated KeyValue attributes = 1; }
message InstrumentationScope {
  string name = 1; string version = 2; repeated KeyValue attributes = 3; uint32 dropped_attributes_count = 4;
}

message Status { string message = 2; int32 code = 3; }
message SpanEvent { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; }
message SpanLink {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; repeated KeyValue attributes = 4;
}
message Span {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4; string name = 5;
  int32 kind = 6; fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9; repeated SpanEvent events = 11; repeated SpanLink links = 13;
  Status status = 15;
}
message ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2; string schema_url = 3; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3; }
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }

message LogRecord {
  fixed64 time_unix_nano = 1; fixed64 observed_time_unix_nano = 11; int32 severity_number = 2;
  string severity_text = 3; ValueB body = 5; repeated KeyValueA attributes = 6; fixed32 flags = 8;
  bytes trace_id = 9; bytes span_id = 10; string event_name = 12;
}
message ScopeLogs {
  InstrumentationScope scope = 1; repeated LogRecord log_records = 2; string schema_url = 3;
}
message ResourceLogs { Resource resource = 1; repeated ScopeLogs scope_logs = 2; string schema_url = 3; }
message ExportLogsServiceRequest { repeated ResourceLogs resource_logs = 1; }

message Exemplar {
  repeated KeyValue filtered_attributes = 7; fixed64 time_unix_nano = 2;
  oneof kind { double as_double = 3; sfixed64 as_int = 6; }
  bytes span_id = 4; bytes trace_id = 5;
}
message NumberDataPoint {
  repeated KeyValue attributes = 7; fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3;
  oneof kind { double as_double = 4; sfixed64 as_int = 6; }
  repeated Exemplar exemplars = 5; uint32 flags = 8;
}
message HistogramDataPoint {
  repeated KeyValue attributes = 9; fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3;
  fixed64 count = 4; double sum = 5; repeated fixed64 bucket_counts = 6; repeated double explicit_bounds = 7;
  repeated Exemplar exemplars = 8; uint32 flags = 10; double min = 11; double max = 12;
}
message Buckets { sint32 offset = 1; repeated uint64 bucket_counts = 2; }
message ExponentialHistogramDataPoint {
  repeated KeyValue attributes = 1; fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3;
  fixed64 count = 4; double sum = 5; sint32 scale = 6; fixed64 zero_count = 7; Buckets positive = 8;
  Buckets negative = 9; uint32 flags = 10; repeated Exemplar exemplars = 11; double min = 12; double max = 13;
}
message ValueAtQuantile { double quantile = 1; double value = 2; }
message SummaryDataPoint {
  repeated KeyValue attributes = 7; fixed64 start_time_unix_nano = 2; fixed64 time_unix_nano = 3;
  fixed64 count = 4; double sum = 5; repeated ValueAtQuantile quantile_values = 6; uint32 flags = 8;
}
message Gauge { repeated NumberDataPoint data_points = 1; }
message Sum {
  repeated NumberDataPoint data_points = 1; int32 aggregation_temporality = 2; bool is_monotonic = 3;
}
message Histogram { repeated HistogramDataPoint data_points = 1; int32 aggregation_temporality = 2; }
message ExponentialHistogram {
  repeated ExponentialHistogramDataPoint data_points = 1; int32 aggregation_temporality = 2;
}
message Summary { repeated SummaryDataPoint data_points = 1; }
message Metric {
  string name = 1; string description = 2; string unit = 3; Gauge gauge = 5; Sum sum = 7;
  Histogram histogram = 9; ExponentialHistogram exponential_histogram = 10; Summary summary = 11;
}
message ScopeMetrics { InstrumentationScope scope = 1; repeated Metric metrics = 2; string schema_url = 3; }
message ResourceMetrics {
  Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; string schema_url = 3;
}
message ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
"""
    )
    .replace("ValueB body", f"Value{LOG_BODY_LEVEL} body")
    .replace("KeyValueA attributes", f"KeyValue{LOG_ATTRIBUTE_LEVEL} attributes")
)

# ClickHouse column types mirroring the messages above (names match field names).
_SCALARS = "string_value String, bool_value Bool, int_value Int64, double_value Float64"


def value_type(level: int) -> str:
    """The ClickHouse type of ``Value<level>``."""
    if level == 0:
        return f"Tuple({_SCALARS}, array_value String, kvlist_value String, bytes_value String, kind UInt8)"
    below = value_type(level - 1)
    return (
        f"Tuple({_SCALARS}, array_value Tuple(values Array({below})), "
        f"kvlist_value Tuple(values Array(Tuple(key String, value {below}))), bytes_value String, kind UInt8)"
    )


def attributes_type(level: int) -> str:
    return f"Array(Tuple(key String, value {value_type(level)}))"


ATTRIBUTES: Final = attributes_type(ATTRIBUTE_LEVEL)
_SCOPE = f"Tuple(name String, version String, attributes {ATTRIBUTES}, dropped_attributes_count UInt32)"
_RESOURCE = f"Tuple(attributes {ATTRIBUTES})"

_SPAN = (
    "Tuple(trace_id String, span_id String, trace_state String, parent_span_id String, name String, "
    "kind Int32, start_time_unix_nano UInt64, end_time_unix_nano UInt64, "
    f"attributes {ATTRIBUTES}, "
    f"events Array(Tuple(time_unix_nano UInt64, name String, attributes {ATTRIBUTES})), "
    "links Array(Tuple(trace_id String, span_id String, trace_state String, "
    f"attributes {ATTRIBUTES})), "
    "status Tuple(message String, code Int32))"
)
TRACES_INPUT: Final = (
    f"resource_spans Array(Tuple(resource {_RESOURCE}, "
    f"scope_spans Array(Tuple(scope {_SCOPE}, spans Array({_SPAN}), schema_url String)), "
    "schema_url String))"
)

_LOG_RECORD = (
    "Tuple(time_unix_nano UInt64, observed_time_unix_nano UInt64, severity_number Int32, "
    f"severity_text String, body {value_type(LOG_BODY_LEVEL)}, "
    f"attributes {attributes_type(LOG_ATTRIBUTE_LEVEL)}, "
    "flags UInt32, "
    "trace_id String, span_id String, event_name String)"
)
LOGS_INPUT: Final = (
    f"resource_logs Array(Tuple(resource {_RESOURCE}, "
    f"scope_logs Array(Tuple(scope {_SCOPE}, log_records Array({_LOG_RECORD}), schema_url String)), "
    "schema_url String))"
)

_EXEMPLARS = (
    f"Array(Tuple(filtered_attributes {ATTRIBUTES}, time_unix_nano UInt64, as_double Float64, "
    "as_int Int64, kind UInt8, span_id String, trace_id String))"
)
_POINT_HEAD = f"attributes {ATTRIBUTES}, start_time_unix_nano UInt64, time_unix_nano UInt64"
_NUMBER_POINTS = (
    f"Array(Tuple({_POINT_HEAD}, as_double Float64, as_int Int64, kind UInt8, "
    f"exemplars {_EXEMPLARS}, flags UInt32))"
)
_HISTOGRAM_POINTS = (
    f"Array(Tuple({_POINT_HEAD}, count UInt64, sum Float64, bucket_counts Array(UInt64), "
    f"explicit_bounds Array(Float64), exemplars {_EXEMPLARS}, flags UInt32, min Float64, max Float64))"
)
_BUCKETS = "Tuple(offset Int32, bucket_counts Array(UInt64))"
_EXP_HISTOGRAM_POINTS = (
    f"Array(Tuple({_POINT_HEAD}, count UInt64, sum Float64, scale Int32, zero_count UInt64, "
    f"positive {_BUCKETS}, negative {_BUCKETS}, flags UInt32, exemplars {_EXEMPLARS}, "
    "min Float64, max Float64))"
)
_SUMMARY_POINTS = (
    f"Array(Tuple({_POINT_HEAD}, count UInt64, sum Float64, "
    "quantile_values Array(Tuple(quantile Float64, value Float64)), flags UInt32))"
)
_METRIC = (
    "Tuple(name String, description String, unit String, "
    f"gauge Tuple(data_points {_NUMBER_POINTS}), "
    f"sum Tuple(data_points {_NUMBER_POINTS}, aggregation_temporality Int32, is_monotonic Bool), "
    f"histogram Tuple(data_points {_HISTOGRAM_POINTS}, aggregation_temporality Int32), "
    f"exponential_histogram Tuple(data_points {_EXP_HISTOGRAM_POINTS}, aggregation_temporality Int32), "
    f"summary Tuple(data_points {_SUMMARY_POINTS}))"
)
METRICS_INPUT: Final = (
    f"resource_metrics Array(Tuple(resource {_RESOURCE}, "
    f"scope_metrics Array(Tuple(scope {_SCOPE}, metrics Array({_METRIC}), schema_url String)), "
    "schema_url String))"
)

INPUT_STRUCTURE: Final[dict[Signal, str]] = {
    Signal.TRACES: TRACES_INPUT,
    Signal.LOGS: LOGS_INPUT,
    Signal.METRICS: METRICS_INPUT,
}
MESSAGE_NAME: Final[dict[Signal, str]] = {
    Signal.TRACES: "ExportTraceServiceRequest",
    Signal.LOGS: "ExportLogsServiceRequest",
    Signal.METRICS: "ExportMetricsServiceRequest",
}


def input_settings(signal: Signal) -> dict[str, str | int]:
    """Settings of an insert of a serialized request into the signal's input table."""
    return {
        "format_schema_source": "string",
        "format_schema": PROTO_SCHEMA,
        "format_schema_message_name": MESSAGE_NAME[signal],
        "input_format_protobuf_oneof_presence": 1,
    }
