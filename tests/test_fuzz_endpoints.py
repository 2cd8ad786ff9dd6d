"""Hypothesis throws hostile input at both endpoints of one real receiver.

Random bytes, random JSON, protobuf requests with random mutations, OTLP JSON with
random field values, bad gzip, odd content types and deep nesting go to OTLP/HTTP
and OTLP/gRPC. Every answer must be one the OTLP spec allows for the input (HTTP
200/400/413/415, gRPC OK/INVALID_ARGUMENT/RESOURCE_EXHAUSTED), with a well-formed body
that never quotes the request; afterwards the same receiver must still accept a
valid request on both transports and report healthy.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import requests
from google.protobuf.message import Message
from google.rpc import status_pb2
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from bench.workload import generate_logs_requests, generate_metrics_requests, generate_trace_requests
from otel_receiver import otlp_json
from tests.conftest import RunningReceiver, start_receiver
from tests.protobuf_wire import field

LIMIT = 16 * 1024  # max_request_bytes of the receiver under test
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# Strings the generated requests carry in names and values: no answer may contain them.
MARKER = "PII-MARK"

SIGNALS: dict[str, tuple[str, type[Message], type[Message]]] = {
    "traces": (
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    ),
    "metrics": (
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        ExportMetricsServiceRequest,
        ExportMetricsServiceResponse,
    ),
    "logs": (
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        ExportLogsServiceRequest,
        ExportLogsServiceResponse,
    ),
}
START = 1_700_000_000_000_000_000
SEEDS: dict[str, bytes] = {
    "traces": generate_trace_requests(1, spans_per_request=3, seed=7, start_time_ns=START)[
        0
    ].SerializeToString(),
    "metrics": generate_metrics_requests(1, points_per_request=4, seed=7, start_time_ns=START)[
        0
    ].SerializeToString(),
    "logs": generate_logs_requests(1, records_per_request=3, seed=7, start_time_ns=START)[
        0
    ].SerializeToString(),
}

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningReceiver]:
    out = tmp_path_factory.mktemp("fuzz") / "debug.log"
    r = start_receiver(
        f"""
receivers:
  otlp:
    max_request_bytes: {LIMIT}
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
exporters:
  debug:
    verbosity: basic
    output: {out}
service:
  telemetry:
    logs:
      level: error
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
    metrics:
      receivers: [otlp]
      exporters: [debug]
    logs:
      receivers: [otlp]
      exporters: [debug]
"""
    )
    yield r
    r.stop()


@pytest.fixture(scope="module")
def http(receiver: RunningReceiver) -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="module")
def channel(receiver: RunningReceiver) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(receiver.grpc_endpoint) as ch:
        yield ch


# --------------------------------------------------------------------------------------
# oracles


def post(
    http: requests.Session,
    receiver: RunningReceiver,
    signal: str,
    body: bytes,
    content_type: str,
    encoding: str | None = None,
) -> requests.Response:
    headers = {"Content-Type": content_type}
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    return http.post(f"{receiver.http_url}/v1/{signal}", data=body, headers=headers, timeout=30)


def check_http(resp: requests.Response, signal: str, sent_json: bool, allowed: set[int]) -> None:
    assert resp.status_code in allowed, (resp.status_code, resp.content[:300])
    assert MARKER.encode() not in resp.content, "the response quotes the request"
    if resp.status_code == 415 and resp.headers.get("Content-Type", "").startswith(PROTOBUF):
        sent_json = False  # an unsupported media type is answered in protobuf
    if sent_json:
        assert resp.headers["Content-Type"].startswith(JSON)
        doc = json.loads(resp.content or b"{}")
        assert isinstance(doc, dict)
        if resp.status_code != 200:
            assert doc.get("message"), "error without a message"
        return
    assert resp.headers["Content-Type"].startswith(PROTOBUF)
    if resp.status_code == 200:
        response = SIGNALS[signal][2]()
        response.ParseFromString(resp.content)
    else:
        status = status_pb2.Status()
        status.ParseFromString(resp.content)
        assert status.message, "error without a message"


def call_grpc(
    channel: grpc.Channel, signal: str, body: bytes, compress: bool = False
) -> tuple[grpc.StatusCode, str]:
    # No serializers: the bytes go on the wire exactly as generated.
    export = channel.unary_unary(SIGNALS[signal][0])
    try:
        reply = export(body, timeout=30, compression=grpc.Compression.Gzip if compress else None)
    except grpc.RpcError as e:
        details = e.details() or ""
        assert MARKER not in details, "the status quotes the request"
        return e.code(), details
    response = SIGNALS[signal][2]()
    response.ParseFromString(reply)
    assert MARKER not in response.partial_success.error_message
    return grpc.StatusCode.OK, ""


GRPC_OK = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}


# --------------------------------------------------------------------------------------
# strategies

signals = st.sampled_from(sorted(SIGNALS))

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=40,
)
OTLP_KEYS = [
    "resourceSpans",
    "resource_spans",
    "resourceMetrics",
    "resourceLogs",
    "scopeSpans",
    "scopeLogs",
    "scopeMetrics",
    "spans",
    "logRecords",
    "metrics",
    "resource",
    "attributes",
    "traceId",
    "spanId",
]
json_documents = json_values | st.dictionaries(
    st.sampled_from(OTLP_KEYS) | st.text(max_size=12), json_values, min_size=1, max_size=4
)


def _hex(n: int) -> st.SearchStrategy[Any]:
    """Mostly well-formed ids, sometimes wrong length, case, characters or type."""
    return st.one_of(
        st.binary(min_size=n, max_size=n).map(bytes.hex),
        st.binary(min_size=n, max_size=n).map(lambda b: b.hex().upper()),
        st.just("0" * 2 * n),
        st.text(alphabet="0123456789abcdefg-", max_size=2 * n + 3),
        json_values,
    )


def _int64() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(min_value=0, max_value=2**64 + 5),
        st.integers(min_value=-(2**63) - 5, max_value=2**63).map(str),
        st.sampled_from(["", "1e3", "0x10", " 1", "-0", "99999999999999999999999"]),
        json_values,
    )


marked_text = st.text(max_size=15).map(lambda s: MARKER + s)

any_values = st.recursive(
    st.one_of(
        st.builds(lambda s: {"stringValue": s}, marked_text),
        st.builds(lambda b: {"boolValue": b}, st.booleans() | json_values),
        st.builds(lambda i: {"intValue": i}, _int64()),
        st.builds(
            lambda d: {"doubleValue": d},
            st.floats().map(
                lambda f: f if f == f and abs(f) != float("inf") else str(f).replace("inf", "Infinity")
            )
            | st.sampled_from(["NaN", "Infinity", "-Infinity", "1.5", "nope"]),
        ),
        st.builds(
            lambda b: {"bytesValue": b},
            st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode()) | st.text(max_size=8),
        ),
        st.just({}),
        json_values.map(lambda v: {"stringValue": v}),
    ),
    lambda children: st.one_of(
        st.builds(lambda vs: {"arrayValue": {"values": vs}}, st.lists(children, max_size=4)),
        st.builds(
            lambda kvs: {"kvlistValue": {"values": kvs}},
            st.lists(st.fixed_dictionaries({"key": marked_text, "value": children}), max_size=4),
        ),
    ),
    max_leaves=12,
)
key_values = st.lists(
    st.fixed_dictionaries({"key": marked_text, "value": any_values}) | json_values.map(lambda v: {"key": v}),
    max_size=5,
)
enum_values = (
    st.integers(min_value=-3, max_value=8) | st.sampled_from(["SPAN_KIND_SERVER", "bogus"]) | json_values
)

spans = st.fixed_dictionaries(
    {"traceId": _hex(16), "spanId": _hex(8), "name": marked_text},
    optional={
        "parentSpanId": _hex(8),
        "kind": enum_values,
        "startTimeUnixNano": _int64(),
        "endTimeUnixNano": _int64(),
        "attributes": key_values,
        "droppedAttributesCount": _int64(),
        "flags": _int64(),
        "traceState": marked_text | json_values,
        "events": st.lists(
            st.fixed_dictionaries(
                {"name": marked_text}, optional={"timeUnixNano": _int64(), "attributes": key_values}
            ),
            max_size=3,
        ),
        "links": st.lists(
            st.fixed_dictionaries(
                {"traceId": _hex(16), "spanId": _hex(8)}, optional={"attributes": key_values}
            ),
            max_size=2,
        ),
        "status": st.fixed_dictionaries({}, optional={"code": enum_values, "message": marked_text}),
        "someFutureField": json_values,
    },
)
resource = st.fixed_dictionaries({}, optional={"attributes": key_values, "droppedAttributesCount": _int64()})
scope = st.fixed_dictionaries(
    {}, optional={"name": marked_text, "version": marked_text, "attributes": key_values}
)

trace_docs = st.fixed_dictionaries(
    {
        "resourceSpans": st.lists(
            st.fixed_dictionaries(
                {
                    "scopeSpans": st.lists(
                        st.fixed_dictionaries(
                            {"spans": st.lists(spans, max_size=3)}, optional={"scope": scope}
                        ),
                        max_size=2,
                    )
                },
                optional={"resource": resource, "schemaUrl": marked_text | json_values},
            ),
            max_size=2,
        )
    }
)
log_records = st.fixed_dictionaries(
    {},
    optional={
        "timeUnixNano": _int64(),
        "observedTimeUnixNano": _int64(),
        "severityNumber": enum_values,
        "severityText": marked_text,
        "body": any_values,
        "attributes": key_values,
        "traceId": _hex(16) | st.just(""),
        "spanId": _hex(8) | st.just(""),
        "flags": _int64(),
        "eventName": marked_text,
    },
)
log_docs = st.fixed_dictionaries(
    {
        "resourceLogs": st.lists(
            st.fixed_dictionaries(
                {
                    "scopeLogs": st.lists(
                        st.fixed_dictionaries({"logRecords": st.lists(log_records, max_size=3)}), max_size=2
                    )
                },
                optional={"resource": resource},
            ),
            max_size=2,
        )
    }
)
number_points = st.fixed_dictionaries(
    {},
    optional={
        "timeUnixNano": _int64(),
        "startTimeUnixNano": _int64(),
        "asInt": _int64(),
        "asDouble": st.floats().map(str) | st.floats(allow_nan=False, allow_infinity=False) | json_values,
        "attributes": key_values,
    },
)
histogram_points = st.fixed_dictionaries(
    {},
    optional={
        "count": _int64(),
        "sum": st.floats(allow_nan=False, allow_infinity=False) | json_values,
        "bucketCounts": st.lists(_int64(), max_size=4),
        "explicitBounds": st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=3)
        | json_values,
        "attributes": key_values,
    },
)
metric = st.fixed_dictionaries(
    {"name": marked_text},
    optional={"unit": marked_text, "description": marked_text},
).flatmap(
    lambda base: st.one_of(
        st.builds(lambda pts: {**base, "gauge": {"dataPoints": pts}}, st.lists(number_points, max_size=3)),
        st.builds(
            lambda pts, t, m: {
                **base,
                "sum": {"dataPoints": pts, "aggregationTemporality": t, "isMonotonic": m},
            },
            st.lists(number_points, max_size=3),
            enum_values,
            st.booleans() | json_values,
        ),
        st.builds(
            lambda pts, t: {**base, "histogram": {"dataPoints": pts, "aggregationTemporality": t}},
            st.lists(histogram_points, max_size=2),
            enum_values,
        ),
        st.just(base),
    )
)
metric_docs = st.fixed_dictionaries(
    {
        "resourceMetrics": st.lists(
            st.fixed_dictionaries(
                {
                    "scopeMetrics": st.lists(
                        st.fixed_dictionaries({"metrics": st.lists(metric, max_size=3)}), max_size=2
                    )
                },
                optional={"resource": resource},
            ),
            max_size=2,
        )
    }
)
OTLP_DOCS = {"traces": trace_docs, "metrics": metric_docs, "logs": log_docs}


@st.composite
def mutated(draw: st.DrawFn, signal: str) -> bytes:
    """A valid request's protobuf bytes after a few random edits."""
    data = bytearray(SEEDS[signal])
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "splice"]))
        pos = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif op == "set" and data:
            data[pos] = draw(st.sampled_from([0x00, 0x08, 0x0A, 0x12, 0x7F, 0x80, 0xFF]))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(min_value=1, max_value=16))]
        elif op == "truncate":
            del data[pos:]
        elif op == "splice":
            other = SEEDS[draw(signals)]
            start = draw(st.integers(min_value=0, max_value=len(other) - 1))
            data[pos:pos] = other[start : start + draw(st.integers(min_value=1, max_value=200))]
    return bytes(data)


def _nested_json_body(depth: int) -> bytes:
    """A trace request with one attribute nested ``depth`` arrays deep, built as text
    because ``json.dumps`` itself gives up on such nesting."""
    value = '{"stringValue":"' + MARKER + '"}'
    for _ in range(depth):
        value = '{"arrayValue":{"values":[' + value + "]}}"
    span = (
        '{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"deep",'
        '"attributes":[{"key":"k","value":' + value + "}]}"
    )
    return ('{"resourceSpans":[{"scopeSpans":[{"spans":[' + span + "]}]}]}").encode()


def _nested_proto_value(depth: int) -> bytes:
    """An AnyValue nested ``depth`` arrays deep, encoded by hand: protobuf-python refuses
    to build messages that deep, so the bytes are assembled from the wire format."""

    value = field(1, MARKER.encode())  # AnyValue.string_value
    for _ in range(depth):
        value = field(5, field(1, value))  # AnyValue.array_value -> ArrayValue.values
    kv = field(1, b"k") + field(2, value)  # KeyValue
    span = field(1, bytes(range(1, 17))) + field(2, bytes(range(1, 9))) + field(9, kv)
    return field(1, field(2, field(2, span)))  # ResourceSpans.scope_spans.spans


# --------------------------------------------------------------------------------------
# HTTP


@FUZZ
@given(signal=signals, body=st.binary(max_size=2048), as_json=st.booleans())
def test_http_random_bytes(
    receiver: RunningReceiver, http: requests.Session, signal: str, body: bytes, as_json: bool
) -> None:
    resp = post(http, receiver, signal, body, JSON if as_json else PROTOBUF)
    check_http(resp, signal, as_json, {200, 400})


@FUZZ
@given(signal=signals, doc=json_documents)
def test_http_random_json(receiver: RunningReceiver, http: requests.Session, signal: str, doc: Any) -> None:
    resp = post(http, receiver, signal, json.dumps(doc).encode(), JSON)
    check_http(resp, signal, True, {200, 400})


@FUZZ
@given(data=st.data(), signal=signals)
def test_http_otlp_json_with_random_values(
    receiver: RunningReceiver, http: requests.Session, data: st.DataObject, signal: str
) -> None:
    doc = data.draw(OTLP_DOCS[signal])
    body = json.dumps(doc).encode()
    assume(len(body) <= LIMIT)
    resp = post(http, receiver, signal, body, JSON)
    check_http(resp, signal, True, {200, 400})


@FUZZ
@given(data=st.data(), signal=signals, as_gzip=st.booleans())
def test_http_mutated_protobuf(
    receiver: RunningReceiver, http: requests.Session, data: st.DataObject, signal: str, as_gzip: bool
) -> None:
    body = data.draw(mutated(signal))
    if as_gzip:
        resp = post(http, receiver, signal, gzip.compress(body), PROTOBUF, "gzip")
    else:
        resp = post(http, receiver, signal, body, PROTOBUF)
    check_http(resp, signal, False, {200, 400, 413} if len(body) > LIMIT else {200, 400})


@FUZZ
@given(
    signal=signals,
    body=st.binary(max_size=512) | st.binary(max_size=512).map(gzip.compress),
    encoding=st.sampled_from(["gzip", "GZIP", "identity", "", "deflate", "br", "gzip, gzip", "x" * 300])
    # (no surrounding blanks: the HTTP client itself refuses to send those)
    | st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20).map(str.strip),
    content_type=st.sampled_from(
        [PROTOBUF, JSON, "application/json; charset=utf-8", "APPLICATION/X-PROTOBUF", "text/plain", "", "*/*"]
    )
    | st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.strip),
)
def test_http_odd_headers_and_gzip(
    receiver: RunningReceiver,
    http: requests.Session,
    signal: str,
    body: bytes,
    encoding: str,
    content_type: str,
) -> None:
    resp = post(http, receiver, signal, body, content_type, encoding)
    as_json = resp.headers.get("Content-Type", "").startswith(JSON)
    check_http(resp, signal, as_json, {200, 400, 413, 415})
    if resp.status_code == 200:
        assert content_type.split(";")[0].strip().lower() in (PROTOBUF, JSON)
        assert encoding.strip().lower() in ("gzip", "identity", "")


@FUZZ
@given(
    signal=signals, size=st.integers(min_value=LIMIT + 1, max_value=4 * LIMIT), head=st.binary(max_size=64)
)
def test_http_oversized_and_gzip_bombs(
    receiver: RunningReceiver, http: requests.Session, signal: str, size: int, head: bytes
) -> None:
    body = (head + b"\x0a" * size)[:size]
    resp = post(http, receiver, signal, body, PROTOBUF)
    check_http(resp, signal, False, {413})
    # Small on the wire, over the limit once inflated.
    bomb = gzip.compress(body)
    assert len(bomb) < LIMIT
    resp = post(http, receiver, signal, bomb, PROTOBUF, "gzip")
    check_http(resp, signal, False, {413})


@pytest.mark.parametrize("depth", [50, 99, 101, 200, 5000])
def test_http_deep_nesting(receiver: RunningReceiver, http: requests.Session, depth: int) -> None:
    body = _nested_json_body(depth)
    resp = post(http, receiver, "traces", body, JSON)
    check_http(resp, "traces", True, {413} if len(body) > LIMIT else {200, 400})
    raw = b"[" * depth + b"]" * depth
    check_http(post(http, receiver, "traces", raw, JSON), "traces", True, {400})
    proto = _nested_proto_value(depth)
    if len(proto) <= LIMIT:
        check_http(post(http, receiver, "traces", proto, PROTOBUF), "traces", False, {200, 400})


# --------------------------------------------------------------------------------------
# gRPC


@FUZZ
@given(signal=signals, body=st.binary(max_size=2048))
def test_grpc_random_bytes(channel: grpc.Channel, signal: str, body: bytes) -> None:
    code, _ = call_grpc(channel, signal, body)
    assert code in GRPC_OK


@FUZZ
@given(data=st.data(), signal=signals, compress=st.booleans())
def test_grpc_mutated_protobuf(
    channel: grpc.Channel, data: st.DataObject, signal: str, compress: bool
) -> None:
    body = data.draw(mutated(signal))
    code, details = call_grpc(channel, signal, body, compress)
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        assert details
    assert code in (GRPC_OK | {grpc.StatusCode.RESOURCE_EXHAUSTED} if len(body) > LIMIT else GRPC_OK)


# gRPC takes ~0.1 s to refuse each oversized message (it resets the stream), and the
# oracle does not depend on the content: a few sizes suffice.
@settings(FUZZ, max_examples=20)
@given(signal=signals, size=st.integers(min_value=LIMIT + 1, max_value=4 * LIMIT), compress=st.booleans())
def test_grpc_oversized(channel: grpc.Channel, signal: str, size: int, compress: bool) -> None:
    # Compressed, this is a gzip bomb: small on the wire, over the limit once inflated.
    code, _ = call_grpc(channel, signal, b"\x0a" * size, compress)
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.mark.parametrize("depth", [50, 99, 101, 200, 1000])
def test_grpc_deep_nesting(channel: grpc.Channel, depth: int) -> None:
    proto = _nested_proto_value(depth)
    code, _ = call_grpc(channel, "traces", proto)
    assert code in GRPC_OK


# --------------------------------------------------------------------------------------
# afterwards


def test_receiver_still_serves_after_fuzzing(
    receiver: RunningReceiver, http: requests.Session, channel: grpc.Channel
) -> None:
    """Runs last in this module: the same receiver, after everything above."""
    for signal, (_, request_type, _) in SIGNALS.items():
        seed = SEEDS[signal]
        code, details = call_grpc(channel, signal, seed)
        assert code is grpc.StatusCode.OK, details
        resp = post(http, receiver, signal, seed, PROTOBUF)
        assert resp.status_code == 200, resp.content
        msg = request_type()
        msg.ParseFromString(seed)
        resp = post(http, receiver, signal, otlp_json.encode(msg), JSON)
        assert resp.status_code == 200, resp.content
        assert json.loads(resp.content) == {}
    health = http.get(f"{receiver.http_url}/health", timeout=10)
    assert health.status_code == 200
