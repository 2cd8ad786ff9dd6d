"""OTLP/JSON codec: the official examples, round trips of random requests, and every error class."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from otel_receiver.otlp_json import MAX_MESSAGE_DEPTH, OtlpJsonError, decode, encode, to_dict

EXAMPLES = Path(__file__).parent / "fixtures" / "otlp-examples"
TS = 1544712660300000000


def _str_attr(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _resource() -> Resource:
    return Resource(attributes=[_str_attr("service.name", "my.service")])


def _scope() -> InstrumentationScope:
    return InstrumentationScope(
        name="my.library",
        version="1.0.0",
        attributes=[_str_attr("my.scope.attribute", "some scope attribute")],
    )


def _example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


def test_trace_example_equals_its_protobuf_twin() -> None:
    span = Span(
        trace_id=bytes.fromhex("5B8EFFF798038103D269B633813FC60C"),
        span_id=bytes.fromhex("EEE19B7EC3C1B174"),
        parent_span_id=bytes.fromhex("EEE19B7EC3C1B173"),
        name="I'm a server span",
        start_time_unix_nano=1544712660000000000,
        end_time_unix_nano=1544712661000000000,
        kind=Span.SPAN_KIND_SERVER,
        attributes=[_str_attr("my.span.attr", "some value")],
    )
    twin = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=_resource(), scope_spans=[ScopeSpans(scope=_scope(), spans=[span])])
        ]
    )
    assert decode(ExportTraceServiceRequest, _example("trace.json")) == twin


def test_logs_example_equals_its_protobuf_twin() -> None:
    record = LogRecord(
        time_unix_nano=TS,
        observed_time_unix_nano=TS,
        severity_number=SeverityNumber.SEVERITY_NUMBER_INFO2,
        severity_text="Information",
        trace_id=bytes.fromhex("5B8EFFF798038103D269B633813FC60C"),
        span_id=bytes.fromhex("EEE19B7EC3C1B174"),
        body=AnyValue(string_value="Example log record"),
        attributes=[
            _str_attr("string.attribute", "some string"),
            KeyValue(key="boolean.attribute", value=AnyValue(bool_value=True)),
            KeyValue(key="int.attribute", value=AnyValue(int_value=10)),
            KeyValue(key="double.attribute", value=AnyValue(double_value=637.704)),
            KeyValue(
                key="array.attribute",
                value=AnyValue(
                    array_value=ArrayValue(
                        values=[AnyValue(string_value="many"), AnyValue(string_value="values")]
                    )
                ),
            ),
            KeyValue(
                key="map.attribute",
                value=AnyValue(kvlist_value=KeyValueList(values=[_str_attr("some.map.key", "some value")])),
            ),
        ],
    )
    twin = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(resource=_resource(), scope_logs=[ScopeLogs(scope=_scope(), log_records=[record])])
        ]
    )
    assert decode(ExportLogsServiceRequest, _example("logs.json")) == twin


def test_metrics_example_equals_its_protobuf_twin() -> None:
    cumulative = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    metrics = [
        Metric(
            name="my.counter",
            unit="1",
            description="I am a Counter",
            sum=Sum(
                aggregation_temporality=cumulative,
                is_monotonic=True,
                data_points=[
                    NumberDataPoint(
                        as_double=5,
                        start_time_unix_nano=TS,
                        time_unix_nano=TS,
                        attributes=[_str_attr("my.counter.attr", "some value")],
                    )
                ],
            ),
        ),
        Metric(
            name="my.gauge",
            unit="1",
            description="I am a Gauge",
            gauge=Gauge(
                data_points=[
                    NumberDataPoint(
                        as_double=10, time_unix_nano=TS, attributes=[_str_attr("my.gauge.attr", "some value")]
                    )
                ]
            ),
        ),
        Metric(
            name="my.histogram",
            unit="1",
            description="I am a Histogram",
            histogram=Histogram(
                aggregation_temporality=cumulative,
                data_points=[
                    HistogramDataPoint(
                        start_time_unix_nano=TS,
                        time_unix_nano=TS,
                        count=2,
                        sum=2,
                        bucket_counts=[1, 1],
                        explicit_bounds=[1],
                        min=0,
                        max=2,
                        attributes=[_str_attr("my.histogram.attr", "some value")],
                    )
                ],
            ),
        ),
        Metric(
            name="my.exponential.histogram",
            unit="1",
            description="I am an Exponential Histogram",
            exponential_histogram=ExponentialHistogram(
                aggregation_temporality=cumulative,
                data_points=[
                    ExponentialHistogramDataPoint(
                        start_time_unix_nano=TS,
                        time_unix_nano=TS,
                        count=3,
                        sum=10,
                        scale=0,
                        zero_count=1,
                        positive=ExponentialHistogramDataPoint.Buckets(offset=1, bucket_counts=[0, 2]),
                        min=0,
                        max=5,
                        zero_threshold=0,
                        attributes=[_str_attr("my.exponential.histogram.attr", "some value")],
                    )
                ],
            ),
        ),
    ]
    twin = ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=_resource(), scope_metrics=[ScopeMetrics(scope=_scope(), metrics=metrics)]
            )
        ]
    )
    decoded = decode(ExportMetricsServiceRequest, _example("metrics.json"))
    assert decoded == twin
    # proto3 `optional` fields given as 0 are present, as in protobuf binary
    point = decoded.resource_metrics[0].scope_metrics[0].metrics[2].histogram.data_points[0]
    assert point.HasField("min") and point.min == 0


def test_events_example_decodes_event_name_and_nested_body() -> None:
    request = decode(ExportLogsServiceRequest, _example("events.json"))
    record = request.resource_logs[0].scope_logs[0].log_records[0]
    assert record.event_name == "browser.page_view"
    assert record.severity_number == 9
    assert record.body.kvlist_value.values[0].key == "type"
    assert record.body.kvlist_value.values[0].value.int_value == 0


@pytest.mark.parametrize(
    ("request_type", "name"),
    [
        (ExportTraceServiceRequest, "trace.json"),
        (ExportMetricsServiceRequest, "metrics.json"),
        (ExportLogsServiceRequest, "logs.json"),
        (ExportLogsServiceRequest, "events.json"),
    ],
)
def test_examples_round_trip_and_match_the_source_document(request_type: type[Message], name: str) -> None:
    source = orjson.loads(_example(name))
    message = decode(request_type, _example(name))
    encoded = encode(message)
    assert decode(request_type, encoded) == message
    assert not encoded.endswith(b"\n")
    # Same document apart from hex case: ids are written lower-case.
    text = orjson.dumps(source).decode()
    for hex_id in ("5B8EFFF798038103D269B633813FC60C", "EEE19B7EC3C1B174", "EEE19B7EC3C1B173"):
        text = text.replace(hex_id, hex_id.lower())
    expected = _normalise_numbers(orjson.loads(text))
    if name == "metrics.json":
        # scale and zeroThreshold are 0, the default of fields without presence: not written
        point = expected["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][3]
        del point["exponentialHistogram"]["dataPoints"][0]["scale"]
        del point["exponentialHistogram"]["dataPoints"][0]["zeroThreshold"]
    assert orjson.loads(encoded) == expected


def _normalise_numbers(value: Any) -> Any:
    """The examples write integral doubles as 5, we write 5.0: equal as JSON numbers."""
    if isinstance(value, dict):
        return {k: _normalise_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise_numbers(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def test_encode_writes_the_otlp_json_conventions() -> None:
    span = Span(
        trace_id=bytes(range(16)),
        span_id=bytes(range(8)),
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=2**63 + 5,
        status=Status(code=Status.STATUS_CODE_ERROR),
        attributes=[
            KeyValue(key="b", value=AnyValue(bytes_value=b"\x00\xff")),
            KeyValue(key="d", value=AnyValue(double_value=math.inf)),
            KeyValue(key="i", value=AnyValue(int_value=-(2**63))),
        ],
    )
    span.links.add(trace_id=b"\x11" * 16, span_id=b"\x22" * 8)
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])]
    )
    document = to_dict(request)
    written = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert written["traceId"] == "000102030405060708090a0b0c0d0e0f"
    assert written["spanId"] == "0001020304050607"
    assert "parentSpanId" not in written
    assert written["kind"] == 3
    assert written["status"] == {"code": 2}
    assert written["startTimeUnixNano"] == str(2**63 + 5)
    assert written["attributes"][0]["value"] == {"bytesValue": "AP8="}
    assert written["attributes"][1]["value"] == {"doubleValue": "Infinity"}
    assert written["attributes"][2]["value"] == {"intValue": str(-(2**63))}
    assert written["links"][0] == {"traceId": "11" * 16, "spanId": "22" * 8}
    assert encode(request) == orjson.dumps(document)
    assert b" " not in encode(request)


def test_exemplar_ids_are_hex() -> None:
    body = (
        b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{"dataPoints":[{"asInt":"3",'
        b'"exemplars":[{"traceId":"0102030405060708090A0B0C0D0E0F10","spanId":"0102030405060708",'
        b'"asDouble":1.5}]}]}}]}]}]}'
    )
    request = decode(ExportMetricsServiceRequest, body)
    exemplar = request.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].exemplars[0]
    assert exemplar.trace_id == bytes(range(1, 17))
    assert exemplar.span_id == bytes(range(1, 9))
    assert b'"traceId":"0102030405060708090a0b0c0d0e0f10"' in encode(request)


def test_lenient_input_forms_that_protobuf_json_accepts() -> None:
    body = orjson.dumps(
        {
            "resource_spans": [  # snake_case keys
                {
                    "scope_spans": [
                        {
                            "spans": [
                                {
                                    "trace_id": "",  # empty id = unset
                                    "parentSpanId": "",
                                    "kind": "SPAN_KIND_PRODUCER",  # enum by name
                                    "startTimeUnixNano": 1544712660000000000,  # int64 as number
                                    "endTimeUnixNano": 1.5e18,  # integral float
                                    "droppedAttributesCount": "7",  # uint32 as string
                                    "unknownField": {"nested": [1, 2, 3]},  # ignored
                                    "name": None,  # null = not set
                                    "status": {"code": "2"},
                                    "attributes": [
                                        {"key": "nan", "value": {"doubleValue": "NaN"}},
                                        {"key": "str_double", "value": {"doubleValue": "-2.5e3"}},
                                        {"key": "urlsafe", "value": {"bytesValue": "AP-_"}},
                                        {"key": "unpadded", "value": {"bytesValue": "AP8"}},
                                        {"key": "empty", "value": {}},
                                        {"key": "null_value", "value": {"stringValue": None}},
                                    ],
                                }
                            ]
                        }
                    ]
                }
            ]
        }
    )
    span = decode(ExportTraceServiceRequest, body).resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id == b"" and span.parent_span_id == b""
    assert span.kind == Span.SPAN_KIND_PRODUCER
    assert span.start_time_unix_nano == 1544712660000000000
    assert span.end_time_unix_nano == 1_500_000_000_000_000_000
    assert span.dropped_attributes_count == 7
    assert span.name == ""
    assert span.status.code == Status.STATUS_CODE_ERROR
    values = [kv.value for kv in span.attributes]
    assert math.isnan(values[0].double_value)
    assert values[1].double_value == -2500.0
    assert values[2].bytes_value == b"\x00\xff\xbf"
    assert values[3].bytes_value == b"\x00\xff"
    assert values[4].WhichOneof("value") is None
    assert values[5].WhichOneof("value") is None


def test_empty_message_objects_are_present_like_in_protobuf_json() -> None:
    request = decode(ExportTraceServiceRequest, b'{"resourceSpans":[{"resource":{}}]}')
    assert request.resource_spans[0].HasField("resource")
    assert decode(ExportTraceServiceRequest, encode(request)) == request
    assert decode(ExportTraceServiceRequest, b"{}") == ExportTraceServiceRequest()


# ---------------------------------------------------------------------------
# errors


def _spans_body(span: dict[str, Any]) -> bytes:
    return orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{}, span]}]}]})


SPAN_PATH = "resourceSpans[0].scopeSpans[0].spans[1]"
SECRET = "alice@example.com"


@pytest.mark.parametrize(
    ("span", "expected"),
    [
        ({"traceId": "zz" * 16}, f"{SPAN_PATH}.traceId: invalid hex"),
        ({"spanId": "0102 0304 0506 07"}, f"{SPAN_PATH}.spanId: invalid id length"),
        ({"spanId": "01020304050607 8"}, f"{SPAN_PATH}.spanId: invalid hex"),
        ({"traceId": "0102"}, f"{SPAN_PATH}.traceId: invalid id length: expected 32 hex digits, got 4"),
        ({"parentSpanId": "01" * 16}, f"{SPAN_PATH}.parentSpanId: invalid id length"),
        ({"traceId": "é" * 32}, f"{SPAN_PATH}.traceId: invalid hex"),
        ({"traceId": 12}, f"{SPAN_PATH}.traceId: expected a hex string"),
        ({"links": [{"spanId": "xyz"}]}, f"{SPAN_PATH}.links[0].spanId: invalid id length"),
        ({"name": 5}, f"{SPAN_PATH}.name: expected a string"),
        ({"kind": True}, f"{SPAN_PATH}.kind: expected an integer"),
        ({"kind": "SERVER_ISH"}, f"{SPAN_PATH}.kind: unknown SpanKind value"),
        ({"kind": 2**31}, f"{SPAN_PATH}.kind: integer out of range"),
        ({"startTimeUnixNano": "12abc"}, f"{SPAN_PATH}.startTimeUnixNano: expected an integer"),
        ({"startTimeUnixNano": -1}, f"{SPAN_PATH}.startTimeUnixNano: integer out of range"),
        ({"startTimeUnixNano": str(2**64)}, f"{SPAN_PATH}.startTimeUnixNano: integer out of range"),
        ({"startTimeUnixNano": 1.5}, f"{SPAN_PATH}.startTimeUnixNano: expected an integer"),
        ({"droppedAttributesCount": -1}, f"{SPAN_PATH}.droppedAttributesCount: integer out of range"),
        ({"attributes": {}}, f"{SPAN_PATH}.attributes: expected an array"),
        ({"attributes": [[]]}, f"{SPAN_PATH}.attributes[0]: expected an object"),
        ({"attributes": [None]}, f"{SPAN_PATH}.attributes[0]: expected an object"),
        ({"status": []}, f"{SPAN_PATH}.status: expected an object"),
        (
            {"attributes": [{"key": "k", "value": {"boolValue": "true"}}]},
            f"{SPAN_PATH}.attributes[0].value.boolValue: expected true or false",
        ),
        (
            {"attributes": [{"key": "k", "value": {"doubleValue": "1,5"}}]},
            f"{SPAN_PATH}.attributes[0].value.doubleValue: expected a number",
        ),
        (
            {"attributes": [{"key": "k", "value": {"doubleValue": "1e999"}}]},
            f"{SPAN_PATH}.attributes[0].value.doubleValue: number out of range",
        ),
        (
            {"attributes": [{"key": "k", "value": {"bytesValue": "!!!!"}}]},
            f"{SPAN_PATH}.attributes[0].value.bytesValue: invalid base64",
        ),
        (
            {"attributes": [{"key": "k", "value": {"stringValue": "a", "intValue": "1"}}]},
            f"{SPAN_PATH}.attributes[0].value.intValue: more than one field of oneof 'value' given",
        ),
        ({"name": "a", "trace_id": "", "traceId": ""}, f"{SPAN_PATH}.traceId: field given twice"),
    ],
)
def test_invalid_fields_are_named_by_path(span: dict[str, Any], expected: str) -> None:
    with pytest.raises(OtlpJsonError) as caught:
        decode(ExportTraceServiceRequest, _spans_body(span))
    assert str(caught.value).startswith(expected)


@pytest.mark.parametrize(
    "span",
    [
        {"traceId": SECRET},
        {"name": [SECRET]},
        {"kind": SECRET},
        {"startTimeUnixNano": SECRET},
        {"attributes": [{"key": SECRET, "value": {"intValue": SECRET}}]},
        {"attributes": [{"key": "k", "value": {"bytesValue": SECRET}}]},
        {"attributes": [{"key": "k", "value": {"doubleValue": SECRET}}]},
        {SECRET: "x", "attributes": [{"key": "k", "value": {"boolValue": SECRET}}]},
    ],
)
def test_errors_never_echo_values(span: dict[str, Any]) -> None:
    with pytest.raises(OtlpJsonError) as caught:
        decode(ExportTraceServiceRequest, _spans_body(span))
    assert "alice" not in str(caught.value)
    assert "example" not in str(caught.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"[]", "the request must be a JSON object"),
        (b'"resourceSpans"', "the request must be a JSON object"),
        (b"null", "the request must be a JSON object"),
        (b"", "malformed JSON"),
        (b'{"resourceSpans": [', "malformed JSON at line 1 column 20"),
        (b'{"resourceSpans": []} {}', "malformed JSON"),
        (b'{"resourceSpans": [{"resource": NaN}]}', "malformed JSON"),
        (b'{"resourceSpans": [{"x": "\xff\xfe"}]}', "request body is not valid UTF-8"),
        (b'{"resourceSpans": [{"x": "\xed\xa0\x80"}]}', "request body is not valid UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "malformed JSON"),
    ],
)
def test_malformed_documents(body: bytes, expected: str) -> None:
    with pytest.raises(OtlpJsonError) as caught:
        decode(ExportTraceServiceRequest, body)
    assert str(caught.value).startswith(expected)


def _nested_log_body(levels: int, kind: str) -> bytes:
    # Built as text: orjson.dumps refuses documents nested this deep.
    if kind == "array":
        opening, closing = '{"arrayValue":{"values":[', "]}}"
    else:
        opening, closing = '{"kvlistValue":{"values":[{"key":"k","value":', "}]}}"
    value = opening * levels + '{"stringValue":"leaf"}' + closing * levels
    return f'{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{value}}}]}}]}}]}}'.encode()


@pytest.mark.parametrize("kind", ["array", "kvlist"])
def test_nesting_limit_matches_the_binary_parser(kind: str) -> None:
    # Request > ResourceLogs > ScopeLogs > LogRecord > body: depth 4 is the body.
    per_level = 2 if kind == "array" else 3
    deepest_ok = (MAX_MESSAGE_DEPTH - 4) // per_level
    request = decode(ExportLogsServiceRequest, _nested_log_body(deepest_ok, kind))
    assert ExportLogsServiceRequest.FromString(request.SerializeToString()) == request
    assert decode(ExportLogsServiceRequest, encode(request)) == request
    with pytest.raises(OtlpJsonError, match=f"nested deeper than {MAX_MESSAGE_DEPTH} messages"):
        decode(ExportLogsServiceRequest, _nested_log_body(deepest_ok + 1, kind))
    # The binary parser refuses the same depth (protobuf builds it, but cannot read it back).
    too_deep = ExportLogsServiceRequest()
    body = too_deep.resource_logs.add().scope_logs.add().log_records.add().body
    for _ in range(deepest_ok + 1):
        body = body.array_value.values.add() if kind == "array" else body.kvlist_value.values.add().value
    if kind == "array" or (MAX_MESSAGE_DEPTH - 4) % per_level == 0:
        with pytest.raises(DecodeError):
            ExportLogsServiceRequest.FromString(too_deep.SerializeToString())


def test_very_deep_nesting_is_an_error_not_a_crash() -> None:
    # 300 levels: beyond our limit but within orjson's, so our walk must stop it.
    with pytest.raises(OtlpJsonError, match="nested deeper"):
        decode(ExportLogsServiceRequest, _nested_log_body(300, "array"))
    # Far beyond orjson's own limit: refused by the parser.
    with pytest.raises(OtlpJsonError, match="malformed JSON"):
        decode(ExportLogsServiceRequest, _nested_log_body(5000, "kvlist"))


# ---------------------------------------------------------------------------
# round trip of random requests, generated from the message descriptors


_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_ID_LENGTHS = {"trace_id": 16, "span_id": 8, "parent_span_id": 8}


def _scalar_strategy(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return st.text(max_size=12)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_DOUBLE:
        return st.floats(allow_nan=False)
    if t == FieldDescriptor.TYPE_BYTES:
        if field.name in _ID_LENGTHS:
            n = _ID_LENGTHS[field.name]
            return st.one_of(st.just(b""), st.binary(min_size=n, max_size=n))
        return st.binary(max_size=12)
    if t == FieldDescriptor.TYPE_ENUM:
        return st.one_of(
            st.sampled_from([v.number for v in field.enum_type.values]), st.integers(0, 2**31 - 1)
        )
    lo, hi = _RANGES[t]
    return st.integers(lo, hi)


@st.composite
def _fill_random(draw: st.DrawFn, message: Message, depth: int) -> Message:
    descriptor: Descriptor = message.DESCRIPTOR
    chosen_oneof: dict[str, str] = {}
    for oneof in descriptor.oneofs:
        if oneof.fields and not oneof.name.startswith("_"):
            chosen_oneof[oneof.name] = draw(st.sampled_from([f.name for f in oneof.fields] + [""]))
    for field in descriptor.fields:
        real_oneof = field.containing_oneof
        if real_oneof is not None and not real_oneof.name.startswith("_"):
            if chosen_oneof[real_oneof.name] != field.name:
                continue
        elif not draw(st.booleans()):
            continue
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 7:
                continue
            if field.is_repeated:
                for _ in range(draw(st.integers(0, 2))):
                    draw(_fill_random(getattr(message, field.name).add(), depth + 1))
            else:
                child = getattr(message, field.name)
                child.SetInParent()
                draw(_fill_random(child, depth + 1))
        elif field.is_repeated:
            getattr(message, field.name).extend(draw(st.lists(_scalar_strategy(field), max_size=3)))
        else:
            setattr(message, field.name, draw(_scalar_strategy(field)))
    return message


REQUEST_TYPES: list[type[Message]] = [
    ExportTraceServiceRequest,
    ExportMetricsServiceRequest,
    ExportLogsServiceRequest,
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(REQUEST_TYPES).flatmap(lambda request_type: _fill_random(request_type(), 0)))
def test_random_requests_round_trip(request: Message) -> None:
    encoded = encode(request)
    decoded = decode(type(request), encoded)
    assert decoded == request
    assert decoded.SerializeToString(deterministic=True) == request.SerializeToString(deterministic=True)


def test_nan_round_trips_bit_for_bit() -> None:
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.body.double_value = math.nan
    encoded = encode(request)
    assert b'"doubleValue":"NaN"' in encoded
    assert decode(ExportLogsServiceRequest, encoded).SerializeToString() == request.SerializeToString()


# ---------------------------------------------------------------------------
# fuzz: any JSON document either decodes or raises OtlpJsonError, nothing else


def _field_names(descriptor: Descriptor, names: set[str]) -> set[str]:
    for field in descriptor.fields:
        if field.json_name in names:
            continue
        names.update({field.json_name, field.name})
        if field.message_type is not None:
            _field_names(field.message_type, names)
    return names


_KEYS = sorted(
    _field_names(ExportTraceServiceRequest.DESCRIPTOR, set())
    | _field_names(ExportMetricsServiceRequest.DESCRIPTOR, set())
    | _field_names(ExportLogsServiceRequest.DESCRIPTOR, set())
)
_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),  # what orjson can write
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "0102030405060708", "AP8=", "SPAN_KIND_SERVER", "12"]),
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(_KEYS), st.text(max_size=5)), children, max_size=5),
    ),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(REQUEST_TYPES), _JSON_VALUES)
def test_random_json_decodes_or_raises_otlp_json_error(request_type: type[Message], document: Any) -> None:
    body = orjson.dumps(document)
    try:
        message = decode(request_type, body)
    except OtlpJsonError as exc:
        assert "\n" not in str(exc)
    else:
        assert decode(request_type, encode(message)) == message or _has_nan(message)


def _has_nan(message: Message) -> bool:
    return b"NaN" in encode(message)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(REQUEST_TYPES), st.binary(max_size=200))
def test_random_bytes_decode_or_raise_otlp_json_error(request_type: type[Message], body: bytes) -> None:
    with contextlib.suppress(OtlpJsonError):
        decode(request_type, body)
