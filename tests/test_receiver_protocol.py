"""OTLP protocol behaviour of both transports: every error path returns the spec's status with a
message naming the problem, and the receiver keeps serving afterwards."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import logging
import resource
import zlib
from collections.abc import Iterator
from urllib.parse import urlparse

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from otel_receiver.encoded_attributes import varint
from tests.components import RecordingExporter
from tests.conftest import RunningReceiver, start_receiver

TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
METRICS = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
LOGS = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
API_KEY = "test-key-0123456789"
LIMIT = 1024 * 1024

CONFIG = f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0"}}
      http: {{endpoint: "127.0.0.1:0"}}
    max_request_bytes: {LIMIT}
  otlp/auth:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0"}}
      http: {{endpoint: "127.0.0.1:0"}}
    auth:
      api_keys:
        - key_sha256: {hashlib.sha256(API_KEY.encode()).hexdigest()}
          tenant: acme
          actor: ingest-bot
          roles: [ingest]
exporters:
  recording: {{name: protocol}}
  recording/auth: {{name: protocol-auth}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [recording]}}
    metrics: {{receivers: [otlp], exporters: [recording]}}
    logs: {{receivers: [otlp], exporters: [recording]}}
    traces/auth: {{receivers: [otlp/auth], exporters: [recording/auth]}}
"""


@pytest.fixture(scope="module")
def receiver() -> Iterator[RunningReceiver]:
    r = start_receiver(CONFIG)
    yield r
    r.stop()


def span_request(n: int = 1, name: str = "op") -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(n):
        s = ss.spans.add()
        s.trace_id = bytes(range(1, 17))
        s.span_id = (i + 1).to_bytes(8, "big")
        s.name = name
    return req


def http_post(
    url: str,
    path: str,
    body: bytes,
    ctype: str = "application/x-protobuf",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": ctype, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def grpc_call(endpoint: str, method: str, body: bytes, **kw: object) -> bytes:
    with grpc.insecure_channel(endpoint) as ch:
        result: bytes = ch.unary_unary(method)(body, timeout=30, **kw)
        return result


def assert_still_serves(r: RunningReceiver) -> None:
    status, _, _ = http_post(r.http_url, "/v1/traces", span_request().SerializeToString())
    assert status == 200
    grpc_call(r.grpc_endpoint, TRACES, span_request().SerializeToString())


def status_message(body: bytes) -> str:
    st = status_pb2.Status()
    st.ParseFromString(body)
    return st.message


# --- success paths ------------------------------------------------------------------------


def test_http_protobuf_and_json_are_accepted_and_answered_in_kind(receiver: RunningReceiver) -> None:
    status, headers, body = http_post(receiver.http_url, "/v1/traces", span_request(3).SerializeToString())
    assert status == 200 and headers["content-type"].startswith("application/x-protobuf")
    ExportTraceServiceResponse().ParseFromString(body)

    doc = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "json-span",
                                "kind": 2,
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": 1544712661000000000,
                                "unknownFieldIsIgnored": True,
                            }
                        ]
                    }
                ]
            }
        ]
    }
    status, headers, body = http_post(
        receiver.http_url, "/v1/traces", json.dumps(doc).encode(), "application/json"
    )
    assert status == 200, body
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {}


def test_gzip_bodies_on_both_transports(receiver: RunningReceiver) -> None:
    raw = span_request(5).SerializeToString()
    status, _, _ = http_post(
        receiver.http_url, "/v1/traces", gzip.compress(raw), headers={"Content-Encoding": "gzip"}
    )
    assert status == 200
    grpc_call(receiver.grpc_endpoint, TRACES, raw, compression=grpc.Compression.Gzip)


def test_empty_requests_succeed(receiver: RunningReceiver) -> None:
    for path in ("/v1/traces", "/v1/metrics", "/v1/logs"):
        status, _, body = http_post(receiver.http_url, path, b"")
        assert status == 200
        assert body == b""  # an empty Export*ServiceResponse
    for method in (TRACES, METRICS, LOGS):
        assert grpc_call(receiver.grpc_endpoint, method, b"") == b""
    status, _, body = http_post(receiver.http_url, "/v1/logs", b"{}", "application/json")
    assert status == 200 and json.loads(body) == {}


def test_partial_success_reports_rejected_spans(receiver: RunningReceiver) -> None:
    req = span_request(3)
    req.resource_spans[0].scope_spans[0].spans[1].trace_id = b"\x01\x02"  # wrong length
    resp = ExportTraceServiceResponse()
    resp.ParseFromString(grpc_call(receiver.grpc_endpoint, TRACES, req.SerializeToString()))
    assert resp.partial_success.rejected_spans == 1
    assert "trace_id" in resp.partial_success.error_message

    status, _, body = http_post(receiver.http_url, "/v1/traces", req.SerializeToString())
    assert status == 200
    resp.ParseFromString(body)
    assert resp.partial_success.rejected_spans == 1


def test_metrics_and_logs_reach_the_exporter(receiver: RunningReceiver) -> None:
    before = RecordingExporter.items("protocol")
    m = ExportMetricsServiceRequest()
    metric = m.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "queue.depth"
    metric.gauge.data_points.add().as_int = 7
    grpc_call(receiver.grpc_endpoint, METRICS, m.SerializeToString())
    lg = ExportLogsServiceRequest()
    lg.resource_logs.add().scope_logs.add().log_records.add().body.string_value = "hello"
    status, _, _ = http_post(receiver.http_url, "/v1/logs", lg.SerializeToString())
    assert status == 200
    _wait_exported(receiver, before + 2, "protocol")


def _wait_exported(r: RunningReceiver, expected: int, name: str) -> None:
    import time

    deadline = time.monotonic() + 10
    while RecordingExporter.items(name) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert RecordingExporter.items(name) >= expected


# --- malformed input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xff\xff\xff",  # invalid varint / wire type
        b"\x0a\x05\x0a\x03",  # truncated nested message
        b"\x0a\xff\xff\xff\xff\x0f",  # absurd length
    ],
)
def test_malformed_protobuf(receiver: RunningReceiver, body: bytes) -> None:
    status, _headers, resp = http_post(receiver.http_url, "/v1/traces", body)
    assert status == 400
    assert "ExportTraceServiceRequest" in status_message(resp)
    with pytest.raises(grpc.RpcError) as err:
        grpc_call(receiver.grpc_endpoint, TRACES, body)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ExportTraceServiceRequest" in (err.value.details() or "")
    assert_still_serves(receiver)


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"{not json", ""),
        (b"[1, 2]", ""),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "traceId"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0102"}]}]}]}', "traceId"),
        (b'{"resourceSpans": "nope"}', "resourceSpans"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "\xff\xfe"}]}]}]}', ""),
    ],
)
def test_malformed_json(receiver: RunningReceiver, body: bytes, fragment: str) -> None:
    status, headers, resp = http_post(receiver.http_url, "/v1/traces", body, "application/json")
    assert status == 400, resp
    assert headers["content-type"].startswith("application/json")
    message = json.loads(resp)["message"]
    assert message.startswith("invalid OTLP JSON")
    assert fragment in message
    assert_still_serves(receiver)


def test_invalid_utf8_in_protobuf_string_is_rejected(receiver: RunningReceiver) -> None:
    req = span_request()
    raw = req.SerializeToString().replace(b"op", b"\xc3\x28")  # invalid 2-byte sequence
    status, _, _resp = http_post(receiver.http_url, "/v1/traces", raw)
    assert status == 400
    with pytest.raises(grpc.RpcError) as err:
        grpc_call(receiver.grpc_endpoint, TRACES, raw)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert_still_serves(receiver)


def _deep_any_value(depth: int) -> AnyValue:
    v = AnyValue(string_value="leaf")
    for _ in range(depth):
        outer = AnyValue()
        outer.array_value.values.add().CopyFrom(v)
        v = outer
    return v


def test_deep_nesting_is_refused_not_crashing(receiver: RunningReceiver) -> None:
    # Serialize bottom-up by hand: protobuf itself refuses to build a message this deep.
    leaf = AnyValue(string_value="leaf").SerializeToString()
    body = leaf
    for _ in range(5000):
        array = b"\x0a" + varint(len(body)) + body  # ArrayValue.values = 1
        body = b"\x2a" + varint(len(array)) + array  # AnyValue.array_value = 5
    kv = b"\x0a\x01k" + b"\x12" + varint(len(body)) + body
    span = (
        b"\x0a\x10" + bytes(range(1, 17)) + b"\x12\x08" + bytes(range(1, 9)) + b"\x4a" + varint(len(kv)) + kv
    )
    scope_spans = b"\x12" + varint(len(span)) + span
    resource_spans = b"\x12" + varint(len(scope_spans)) + scope_spans
    request = b"\x0a" + varint(len(resource_spans)) + resource_spans
    status, _, _resp = http_post(receiver.http_url, "/v1/traces", request)
    assert status == 400
    with pytest.raises(grpc.RpcError) as err:
        grpc_call(receiver.grpc_endpoint, TRACES, request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    depth = 3000  # built as text: json.dumps itself cannot nest this deep
    nested = '{"arrayValue": {"values": [' * depth + '{"stringValue": "leaf"}' + "]}}" * depth
    doc = '{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": ' + nested + "}]}]}]}"
    status, _, _ = http_post(receiver.http_url, "/v1/logs", doc.encode(), "application/json")
    assert status == 400
    assert_still_serves(receiver)


# --- limits -------------------------------------------------------------------------------


def test_oversized_request(receiver: RunningReceiver) -> None:
    big = span_request(1, name="x" * (2 * LIMIT)).SerializeToString()
    status, headers, _resp = http_post(receiver.http_url, "/v1/traces", big)
    assert status == 413
    assert "retry-after" not in headers
    with pytest.raises(grpc.RpcError) as err:
        grpc_call(receiver.grpc_endpoint, TRACES, big)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    md = dict(err.value.trailing_metadata() or ())
    assert "grpc-status-details-bin" not in md  # no RetryInfo: the client must not retry
    assert_still_serves(receiver)


def _gzip_zeros(total: int) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    parts = [comp.compress(chunk) for _ in range(total // len(chunk))]
    parts.append(comp.flush())
    return b"".join(parts)


def test_gzip_bomb_is_refused_without_exhausting_memory(receiver: RunningReceiver) -> None:
    bomb = _gzip_zeros(2 * 1024 * 1024 * 1024)  # 2 GiB of zeros in ~2 MiB... over the 1 MiB wire limit
    assert len(bomb) > LIMIT
    status, _, _ = http_post(receiver.http_url, "/v1/traces", bomb, headers={"Content-Encoding": "gzip"})
    assert status == 413

    small_bomb = _gzip_zeros(512 * 1024 * 1024)  # ~500 KiB on the wire, 512 MiB inflated
    assert len(small_bomb) < LIMIT
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    status, _, resp = http_post(
        receiver.http_url, "/v1/traces", small_bomb, headers={"Content-Encoding": "gzip"}
    )
    assert status == 413
    assert "decompressed" in status_message(resp)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mib < 64, f"peak RSS grew by {grown_mib:.0f} MiB"

    # gRPC: gzip-compressed message whose decompressed size is over the limit.
    with pytest.raises(grpc.RpcError) as err:
        grpc_call(receiver.grpc_endpoint, TRACES, bytes(8 * LIMIT), compression=grpc.Compression.Gzip)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_serves(receiver)


def test_invalid_gzip(receiver: RunningReceiver) -> None:
    status, _, resp = http_post(
        receiver.http_url, "/v1/traces", b"not gzip at all", headers={"Content-Encoding": "gzip"}
    )
    assert status == 400
    assert "gzip" in status_message(resp)
    truncated = gzip.compress(span_request().SerializeToString())[:-12]
    status, _, _ = http_post(receiver.http_url, "/v1/traces", truncated, headers={"Content-Encoding": "gzip"})
    assert status == 400
    assert_still_serves(receiver)


# --- HTTP routing -------------------------------------------------------------------------


def test_method_path_and_media_type_errors(receiver: RunningReceiver) -> None:
    u = urlparse(receiver.http_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("GET", "/v1/traces")
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 405
    conn.close()
    assert http_post(receiver.http_url, "/v1/spans", b"")[0] == 404
    status, _, resp_body = http_post(receiver.http_url, "/v1/traces", b"x", "text/plain")
    assert status == 415
    assert "Content-Type" in status_message(resp_body)
    status, _, _ = http_post(receiver.http_url, "/v1/traces", b"x", headers={"Content-Encoding": "br"})
    assert status == 415
    assert_still_serves(receiver)


def test_health(receiver: RunningReceiver) -> None:
    u = urlparse(receiver.http_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("GET", "/health")
    resp = conn.getresponse()
    assert resp.status == 200
    assert json.loads(resp.read()) == {"status": "ready"}
    conn.close()


# --- auth ---------------------------------------------------------------------------------


def test_auth_required_and_principal_reaches_context(receiver: RunningReceiver) -> None:
    auth_http = receiver.service.http["otlp/auth"].url
    auth_grpc = receiver.service.grpc["otlp/auth"].endpoint
    body = span_request(name="authed").SerializeToString()
    status, headers, resp = http_post(auth_http, "/v1/traces", body)
    assert status == 401 and headers.get("www-authenticate") == "Bearer"
    status, _, resp = http_post(auth_http, "/v1/traces", body, headers={"Authorization": "Bearer wrong"})
    assert status == 401
    assert "wrong" not in status_message(resp)
    with pytest.raises(grpc.RpcError) as err:
        grpc_call(auth_grpc, TRACES, body)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

    assert http_post(auth_http, "/v1/traces", body, headers={"x-api-key": API_KEY})[0] == 200
    grpc_call(auth_grpc, TRACES, body, metadata=(("authorization", f"Bearer {API_KEY}"),))
    _wait_exported(receiver, 2, "protocol-auth")
    contexts = [c for _, _, c in RecordingExporter.RECORDS["protocol-auth"]]
    assert {(c.tenant, c.actor, c.roles) for c in contexts} == {("acme", "ingest-bot", ("ingest",))}
    assert {c.transport for c in contexts} == {"http", "grpc"}


# --- nothing sensitive in logs ------------------------------------------------------------


def test_bodies_are_never_logged(receiver: RunningReceiver, caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-live-4242424242424242-secret"
    caplog.set_level(logging.DEBUG)
    bad_json = ('{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "' + secret + '"}]}]}]}').encode()
    status, _, resp = http_post(receiver.http_url, "/v1/traces", bad_json, "application/json")
    assert status == 400
    assert secret not in resp.decode()
    raw = span_request(name=secret).SerializeToString()[:-3]
    status, _, resp = http_post(receiver.http_url, "/v1/traces", raw)
    assert status == 400 and secret.encode() not in resp
    assert secret not in caplog.text


def test_throttling_carries_retry_info(receiver_factory: object) -> None:
    r = receiver_factory(  # type: ignore[operator]
        """
receivers: {otlp: {protocols: {grpc: {endpoint: "127.0.0.1:0"}, http: {endpoint: "127.0.0.1:0"}}}}
exporters:
  recording: {name: throttle, delay: 5, sending_queue: {queue_size: 1, num_consumers: 1}}
service: {pipelines: {traces: {receivers: [otlp], exporters: [recording]}}}
"""
    )
    body = span_request(2).SerializeToString()
    assert http_post(r.http_url, "/v1/traces", body)[0] == 200  # fills the queue (2 >= 1)
    status, headers, _resp = http_post(r.http_url, "/v1/traces", body)
    assert status == 503 and headers["retry-after"] == "1"
    with pytest.raises(grpc.RpcError) as err:
        grpc_call(r.grpc_endpoint, TRACES, body)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    details = dict(err.value.trailing_metadata() or ())["grpc-status-details-bin"]
    st = status_pb2.Status()
    st.ParseFromString(details)
    info = error_details_pb2.RetryInfo()
    assert st.details[0].Unpack(info) and info.retry_delay.seconds == 1
    assert (
        r.telemetry.value(
            "otel_receiver_requests_total", {"transport": "grpc", "signal": "traces", "outcome": "throttled"}
        )
        == 1
    )
