"""The official OpenTelemetry Python SDK talks to a real receiver over OTLP/gRPC and OTLP/HTTP.

Spans, metrics and logs go through the SDK's own OTLP exporters (plain and gzip) to a
receiver on loopback whose pipelines end in the ``file`` exporter; every item must come
out of the file (OTLP JSON lines) exactly as the SDK encoded it: ids, names, kinds,
attributes of every value type the SDK accepts, events, links, status, resource, scope
and timestamps. Each test builds its own SDK providers and never touches the global ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from grpc import Compression as GrpcCompression
from opentelemetry import trace as trace_api
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as PbLogRecord
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber as PbSeverity
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PbStatus
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from otel_receiver import otlp_json
from otel_receiver.attributes import any_value_to_python

# (transport, gzip): both SDK exporters, each with and without request compression.
VARIANTS = [("grpc", False), ("grpc", True), ("http", False), ("http", True)]
VARIANT_IDS = [f"{t}{'-gzip' if gz else ''}" for t, gz in VARIANTS]

RESOURCE_ATTRIBUTES: dict[str, Any] = {
    "service.name": "sdk-roundtrip",
    "service.version": "9.9.9",
    "deployment.environment.name": "test",
    "host.cpu.count": 2,
    "resource.ratio": 0.25,
    "resource.flag": True,
}
SCOPE_NAME = "tests.sdk_roundtrip"
SCOPE_VERSION = "1.2.3"

# One attribute of every value type the SDK accepts, with non-ASCII, empty and extreme values.
ALL_TYPES: dict[str, Any] = {
    "str": "héllo wörld ✓",
    "str.empty": "",
    "bool.true": True,
    "bool.false": False,
    "int": 42,
    "int.negative": -7,
    "int.max": 2**63 - 1,
    "int.min": -(2**63),
    "float": 3.25,
    "float.negative": -1e-300,
    "float.big": 1.7976931348623157e308,
    "bytes": b"\x00\x01\xfe\xff",
    "str.seq": ["a", "", "ü"],
    "bool.seq": [True, False, True],
    "int.seq": [1, -2, 2**62],
    "float.seq": [0.5, -2.75, 1e10],
    "bytes.seq": [b"\x00", b"\xff\xfe"],
    "map": {"inner.str": "x", "inner.int": 5, "inner.list": [1, 2]},
}


def _expected_any(value: Any) -> Any:
    """The Python view ``any_value_to_python`` gives of an SDK attribute value."""
    if isinstance(value, (list, tuple)):
        return [_expected_any(v) for v in value]
    if isinstance(value, dict):
        return {k: _expected_any(v) for k, v in value.items()}
    return value


def _attrs(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        assert kv.key not in out, f"duplicate attribute key {kv.key!r}"
        out[kv.key] = any_value_to_python(kv.value)
    return out


def _value_kind(kvs: Any, key: str) -> str | None:
    for kv in kvs:
        if kv.key == key:
            kind: str | None = kv.value.WhichOneof("value")
            return kind
    raise AssertionError(f"attribute {key!r} missing")


def _assert_typed_attributes(kvs: Any, expected: dict[str, Any]) -> None:
    """Values equal and each of the OTLP AnyValue kind its Python type calls for."""
    got = _attrs(kvs)
    for key, value in expected.items():
        assert key in got, f"attribute {key!r} missing"
        assert got[key] == _expected_any(value), key
        kind = _value_kind(kvs, key)
        if isinstance(value, bool):
            assert kind == "bool_value", key
        elif isinstance(value, int):
            assert kind == "int_value", key
        elif isinstance(value, float):
            assert kind == "double_value", key
        elif isinstance(value, str):
            assert kind == "string_value", key
        elif isinstance(value, bytes):
            assert kind == "bytes_value", key
        elif isinstance(value, dict):
            assert kind == "kvlist_value", key
        else:
            assert kind == "array_value", key
            for kv in kvs:
                if kv.key == key:
                    for item, v in zip(kv.value.array_value.values, value, strict=True):
                        assert item.WhichOneof("value") == _scalar_kind(v), key


def _scalar_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool_value"
    if isinstance(v, int):
        return "int_value"
    if isinstance(v, float):
        return "double_value"
    if isinstance(v, bytes):
        return "bytes_value"
    return "string_value"


@dataclass
class Files:
    traces: Path
    metrics: Path
    logs: Path


@dataclass
class Target:
    transport: str
    gzip: bool
    grpc_endpoint: str
    http_url: str
    stop: Callable[[], None]
    files: Files


@pytest.fixture(params=VARIANTS, ids=VARIANT_IDS)
def target(request: pytest.FixtureRequest, receiver_factory: Any, tmp_path: Path) -> Iterator[Target]:
    files = Files(tmp_path / "traces.jsonl", tmp_path / "metrics.jsonl", tmp_path / "logs.jsonl")
    receiver = receiver_factory(
        f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
exporters:
  file/traces:
    path: {files.traces}
  file/metrics:
    path: {files.metrics}
  file/logs:
    path: {files.logs}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file/traces]
    metrics:
      receivers: [otlp]
      exporters: [file/metrics]
    logs:
      receivers: [otlp]
      exporters: [file/logs]
"""
    )
    transport, gzip = request.param
    yield Target(transport, gzip, receiver.grpc_endpoint, receiver.http_url, receiver.stop, files)


def _read(path: Path, request_type: Any) -> list[Any]:
    assert path.exists(), f"the file exporter wrote nothing to {path}"
    return [otlp_json.decode(request_type, line) for line in path.read_bytes().splitlines() if line.strip()]


def _span_exporter(t: Target) -> Any:
    if t.transport == "grpc":
        comp = GrpcCompression.Gzip if t.gzip else GrpcCompression.NoCompression
        return GrpcSpanExporter(endpoint=t.grpc_endpoint, insecure=True, compression=comp, timeout=10)
    hcomp = HttpCompression.Gzip if t.gzip else HttpCompression.NoCompression
    return HttpSpanExporter(endpoint=f"{t.http_url}/v1/traces", compression=hcomp, timeout=10)


def _metric_exporter(t: Target) -> Any:
    if t.transport == "grpc":
        comp = GrpcCompression.Gzip if t.gzip else GrpcCompression.NoCompression
        return GrpcMetricExporter(endpoint=t.grpc_endpoint, insecure=True, compression=comp, timeout=10)
    hcomp = HttpCompression.Gzip if t.gzip else HttpCompression.NoCompression
    return HttpMetricExporter(endpoint=f"{t.http_url}/v1/metrics", compression=hcomp, timeout=10)


def _log_exporter(t: Target) -> Any:
    if t.transport == "grpc":
        comp = GrpcCompression.Gzip if t.gzip else GrpcCompression.NoCompression
        return GrpcLogExporter(endpoint=t.grpc_endpoint, insecure=True, compression=comp, timeout=10)
    hcomp = HttpCompression.Gzip if t.gzip else HttpCompression.NoCompression
    return HttpLogExporter(endpoint=f"{t.http_url}/v1/logs", compression=hcomp, timeout=10)


def _expected_resource() -> PbResource:
    res = PbResource()
    for key, value in RESOURCE_ATTRIBUTES.items():
        kv = res.attributes.add()
        kv.key = key
        if isinstance(value, bool):
            kv.value.bool_value = value
        elif isinstance(value, int):
            kv.value.int_value = value
        elif isinstance(value, float):
            kv.value.double_value = value
        else:
            kv.value.string_value = value
    return res


def _assert_resource_and_scope(resource: PbResource, scope: InstrumentationScope) -> None:
    assert _attrs(resource.attributes) == RESOURCE_ATTRIBUTES
    assert sorted(resource.attributes, key=lambda kv: kv.key) == sorted(
        _expected_resource().attributes, key=lambda kv: kv.key
    )
    assert scope.name == SCOPE_NAME
    assert scope.version == SCOPE_VERSION
    assert _attrs(scope.attributes) == {"scope.attr": "s", "scope.n": 1}


# --------------------------------------------------------------------------------------
# traces


def test_spans_arrive_intact(target: Target) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource(RESOURCE_ATTRIBUTES))
    # The in-memory copy is what the SDK handed to its OTLP exporter: the reference.
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(SimpleSpanProcessor(_span_exporter(target)))
    tracer = provider.get_tracer(SCOPE_NAME, SCOPE_VERSION, attributes={"scope.attr": "s", "scope.n": 1})

    remote = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "value"), ("other", "x-1")]),
    )
    t0 = 1_700_000_000_123_456_789
    # The root continues a remote trace (as a server does), so it inherits its trace state.
    root = tracer.start_span(
        "root operation",
        context=trace_api.set_span_in_context(trace_api.NonRecordingSpan(remote)),
        kind=SpanKind.SERVER,
        attributes=ALL_TYPES,
        start_time=t0,
    )
    ctx = trace_api.set_span_in_context(root)
    child = tracer.start_span(
        "child ✓",
        context=ctx,
        kind=SpanKind.CLIENT,
        links=[Link(remote, attributes={"link.str": "l", "link.int": 3, "link.seq": [1.5, 2.5]})],
        start_time=t0 + 1_000,
    )
    child.add_event("first event", attributes={"event.str": "e", "event.bool": False}, timestamp=t0 + 2_000)
    child.add_event("second event", attributes=ALL_TYPES, timestamp=t0 + 3_000)
    child.add_event("bare event", timestamp=t0 + 3_500)
    child.set_status(Status(StatusCode.ERROR, "upstream failed: 502 ✗"))
    child.end(end_time=t0 + 4_000)
    for kind in (SpanKind.INTERNAL, SpanKind.PRODUCER, SpanKind.CONSUMER):
        s = tracer.start_span(f"kind {kind.name}", context=ctx, kind=kind, start_time=t0 + 5_000)
        s.set_status(Status(StatusCode.OK))
        s.end(end_time=t0 + 6_000)
    root.end(end_time=t0 + 10_000)
    assert provider.force_flush(10_000)
    provider.shutdown()
    target.stop()

    finished = memory.get_finished_spans()
    assert len(finished) == 5
    expected = encode_spans(finished)
    expected_spans = {
        s.span_id: s for rs in expected.resource_spans for ss in rs.scope_spans for s in ss.spans
    }

    requests = _read(target.files.traces, ExportTraceServiceRequest)
    received: dict[bytes, PbSpan] = {}
    for req in requests:
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                _assert_resource_and_scope(rs.resource, ss.scope)
                for span in ss.spans:
                    assert span.span_id not in received, "span delivered twice"
                    received[span.span_id] = span
    assert received.keys() == expected_spans.keys()
    for span_id, want in expected_spans.items():
        assert received[span_id] == want, f"span {want.name!r} differs from what the SDK sent"

    # The same facts again, stated independently of the SDK's encoder.
    by_name = {s.name: s for s in received.values()}
    r, c = by_name["root operation"], by_name["child ✓"]
    assert r.trace_id == c.trace_id and len(r.trace_id) == 16 and r.trace_id != bytes(16)
    assert r.trace_id == root.get_span_context().trace_id.to_bytes(16, "big")
    assert r.span_id == root.get_span_context().span_id.to_bytes(8, "big")
    assert r.trace_id == bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    assert r.parent_span_id == bytes.fromhex("b7ad6b7169203331") and c.parent_span_id == r.span_id
    assert r.trace_state == c.trace_state == "vendor=value,other=x-1"
    # The SDK writes only the "parent is remote" bits: known (0x100), and set (0x200) for the root.
    assert (r.flags, c.flags) == (0x300, 0x100)
    assert (r.kind, c.kind) == (PbSpan.SPAN_KIND_SERVER, PbSpan.SPAN_KIND_CLIENT)
    assert by_name["kind PRODUCER"].kind == PbSpan.SPAN_KIND_PRODUCER
    assert by_name["kind CONSUMER"].kind == PbSpan.SPAN_KIND_CONSUMER
    assert by_name["kind INTERNAL"].kind == PbSpan.SPAN_KIND_INTERNAL
    assert (r.start_time_unix_nano, r.end_time_unix_nano) == (t0, t0 + 10_000)
    assert (c.start_time_unix_nano, c.end_time_unix_nano) == (t0 + 1_000, t0 + 4_000)
    _assert_typed_attributes(r.attributes, ALL_TYPES)
    assert len(r.attributes) == len(ALL_TYPES)
    assert c.status.code == PbStatus.STATUS_CODE_ERROR
    assert c.status.message == "upstream failed: 502 ✗"
    assert by_name["kind INTERNAL"].status.code == PbStatus.STATUS_CODE_OK
    assert r.status.code == PbStatus.STATUS_CODE_UNSET
    assert [e.name for e in c.events] == ["first event", "second event", "bare event"]
    assert [e.time_unix_nano for e in c.events] == [t0 + 2_000, t0 + 3_000, t0 + 3_500]
    _assert_typed_attributes(c.events[0].attributes, {"event.str": "e", "event.bool": False})
    _assert_typed_attributes(c.events[1].attributes, ALL_TYPES)
    assert len(c.events[2].attributes) == 0
    (link,) = c.links
    assert link.trace_id == bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    assert link.span_id == bytes.fromhex("b7ad6b7169203331")
    # The SDK's encoder does not write a link's trace_state, so there is nothing to compare.
    assert link.flags == 0x300
    _assert_typed_attributes(link.attributes, {"link.str": "l", "link.int": 3, "link.seq": [1.5, 2.5]})


# --------------------------------------------------------------------------------------
# metrics


def test_metrics_arrive_intact(target: Target) -> None:
    reader = PeriodicExportingMetricReader(_metric_exporter(target), export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource(RESOURCE_ATTRIBUTES), metric_readers=[reader])
    meter = provider.get_meter(SCOPE_NAME, SCOPE_VERSION, attributes={"scope.attr": "s", "scope.n": 1})
    before = time.time_ns()

    counter = meter.create_counter("app.requests", unit="{request}", description="requests served")
    counter.add(3, {"route": "/a", "ok": True})
    counter.add(4, {"route": "/a", "ok": True})
    counter.add(5, {"route": "/b", "ok": False, "shard": 2, "weight": 0.5})

    updown = meter.create_up_down_counter("app.inflight", unit="{request}", description="in flight")
    updown.add(5, {"pool": "x"})
    updown.add(-8, {"pool": "x"})

    fcounter = meter.create_counter("app.bytes", unit="By")
    fcounter.add(1.5)
    fcounter.add(2.25)

    histogram = meter.create_histogram(
        "app.latency",
        unit="ms",
        description="latency",
        explicit_bucket_boundaries_advisory=[10.0, 100.0, 1000.0],
    )
    for v in (5, 50, 500, 5000):
        histogram.record(v, {"route": "/a"})
    # Recorded inside a sampled span: the SDK attaches an exemplar carrying its ids.
    span = TracerProvider().get_tracer("ctx").start_span("measured")
    histogram.record(7.5, {"route": "/a"}, context=trace_api.set_span_in_context(span))
    span.end()

    def temperature(options: CallbackOptions) -> list[Observation]:
        return [Observation(21.5, {"room": "a"}), Observation(-3, {"room": "b"})]

    meter.create_observable_gauge("app.temperature", callbacks=[temperature], unit="Cel", description="temp")

    assert provider.force_flush(10_000)
    after = time.time_ns()
    # Shutting the provider down collects and exports once more; the receiver is still
    # up, so both exports arrive, and cumulative values are the same in each.
    provider.shutdown()
    target.stop()

    requests = _read(target.files.metrics, ExportMetricsServiceRequest)
    metrics: dict[str, list[Metric]] = {}
    for req in requests:
        for rm in req.resource_metrics:
            for sm in rm.scope_metrics:
                _assert_resource_and_scope(rm.resource, sm.scope)
                for m in sm.metrics:
                    metrics.setdefault(m.name, []).append(m)
    assert set(metrics) == {"app.requests", "app.inflight", "app.bytes", "app.latency", "app.temperature"}
    exports = len(metrics["app.requests"])
    assert exports >= 1
    assert all(len(v) == exports for v in metrics.values()), "a metric is missing from one export"

    for m in metrics["app.requests"]:
        assert (m.unit, m.description) == ("{request}", "requests served")
        assert m.WhichOneof("data") == "sum"
        assert m.sum.is_monotonic
        assert m.sum.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
        points = {_attrs(p.attributes)["route"]: p for p in m.sum.data_points}
        assert points.keys() == {"/a", "/b"}
        assert points["/a"].WhichOneof("value") == "as_int" and points["/a"].as_int == 7
        assert points["/b"].as_int == 5
        _assert_typed_attributes(points["/a"].attributes, {"route": "/a", "ok": True})
        _assert_typed_attributes(
            points["/b"].attributes, {"route": "/b", "ok": False, "shard": 2, "weight": 0.5}
        )
        for p in m.sum.data_points:
            assert before <= p.start_time_unix_nano <= p.time_unix_nano
            assert p.time_unix_nano >= after - 60 * 10**9

    for m in metrics["app.inflight"]:
        assert m.WhichOneof("data") == "sum" and not m.sum.is_monotonic
        (p,) = m.sum.data_points
        assert p.as_int == -3
        assert _attrs(p.attributes) == {"pool": "x"}

    for m in metrics["app.bytes"]:
        (p,) = m.sum.data_points
        assert p.WhichOneof("value") == "as_double" and p.as_double == 3.75
        assert m.unit == "By"

    for m in metrics["app.latency"]:
        assert (m.unit, m.description) == ("ms", "latency")
        assert m.WhichOneof("data") == "histogram"
        (p,) = m.histogram.data_points
        assert list(p.explicit_bounds) == [10.0, 100.0, 1000.0]
        assert list(p.bucket_counts) == [2, 1, 1, 1]
        assert p.count == 5
        assert p.sum == 5562.5
        assert (p.min, p.max) == (5, 5000)
        assert _attrs(p.attributes) == {"route": "/a"}
        assert before <= p.start_time_unix_nano <= p.time_unix_nano
    # The SDK's reservoir empties on collection: the exemplar is in the first export only.
    (exemplar,) = (e for m in metrics["app.latency"] for p in m.histogram.data_points for e in p.exemplars)
    assert exemplar.trace_id == span.get_span_context().trace_id.to_bytes(16, "big")
    assert exemplar.span_id == span.get_span_context().span_id.to_bytes(8, "big")
    assert exemplar.WhichOneof("value") == "as_double" and exemplar.as_double == 7.5
    assert before <= exemplar.time_unix_nano <= after

    for m in metrics["app.temperature"]:
        assert (m.unit, m.description) == ("Cel", "temp")
        assert m.WhichOneof("data") == "gauge"
        points = {_attrs(p.attributes)["room"]: p for p in m.gauge.data_points}
        assert points["a"].WhichOneof("value") == "as_double" and points["a"].as_double == 21.5
        assert points["b"].WhichOneof("value") == "as_int" and points["b"].as_int == -3
        for p in m.gauge.data_points:
            assert before <= p.time_unix_nano


# --------------------------------------------------------------------------------------
# logs


def test_logs_arrive_intact(target: Target) -> None:
    provider = LoggerProvider(resource=Resource(RESOURCE_ATTRIBUTES))
    provider.add_log_record_processor(SimpleLogRecordProcessor(_log_exporter(target)))
    logger = provider.get_logger(SCOPE_NAME, SCOPE_VERSION, attributes={"scope.attr": "s", "scope.n": 1})

    # A span context to correlate with; its provider exports nowhere.
    span = TracerProvider().get_tracer("ctx").start_span("correlated")
    span_ctx = span.get_span_context()
    in_span = trace_api.set_span_in_context(span)
    t0 = 1_700_000_000_000_000_001

    logger.emit(
        timestamp=t0,
        observed_timestamp=t0 + 5,
        context=in_span,
        severity_number=SeverityNumber.WARN,
        severity_text="WARN",
        body="disk almost full: 91% ✓",
        attributes=ALL_TYPES,
        event_name="disk.pressure",
    )
    logger.emit(
        timestamp=t0 + 10,
        severity_number=SeverityNumber.ERROR3,
        severity_text="ERROR",
        body={"message": "structured", "code": 17, "tags": ["a", "b"], "ratio": 0.5, "ok": False},
        attributes={"only": "one"},
    )
    logger.emit(severity_number=SeverityNumber.DEBUG, body=b"\x00raw\xff")
    span.end()
    assert provider.force_flush(10_000)
    provider.shutdown()
    target.stop()

    records: list[PbLogRecord] = []
    for req in _read(target.files.logs, ExportLogsServiceRequest):
        for rl in req.resource_logs:
            for sl in rl.scope_logs:
                _assert_resource_and_scope(rl.resource, sl.scope)
                records.extend(sl.log_records)
    assert len(records) == 3
    by_severity = {r.severity_number: r for r in records}

    warn = by_severity[PbSeverity.SEVERITY_NUMBER_WARN]
    assert warn.severity_text == "WARN"
    assert warn.body == AnyValue(string_value="disk almost full: 91% ✓")
    assert (warn.time_unix_nano, warn.observed_time_unix_nano) == (t0, t0 + 5)
    assert warn.trace_id == span_ctx.trace_id.to_bytes(16, "big")
    assert warn.span_id == span_ctx.span_id.to_bytes(8, "big")
    assert warn.flags & 0xFF == int(span_ctx.trace_flags)
    assert warn.event_name == "disk.pressure"
    _assert_typed_attributes(warn.attributes, ALL_TYPES)

    error = by_severity[PbSeverity.SEVERITY_NUMBER_ERROR3]
    assert error.severity_text == "ERROR"
    assert error.body.WhichOneof("value") == "kvlist_value"
    assert any_value_to_python(error.body) == {
        "message": "structured",
        "code": 17,
        "tags": ["a", "b"],
        "ratio": 0.5,
        "ok": False,
    }
    assert error.time_unix_nano == t0 + 10
    assert error.observed_time_unix_nano > 0
    assert error.trace_id == b"" and error.span_id == b""
    assert _attrs(error.attributes) == {"only": "one"}

    debug = by_severity[PbSeverity.SEVERITY_NUMBER_DEBUG]
    assert debug.body == AnyValue(bytes_value=b"\x00raw\xff")
    assert debug.time_unix_nano == 0 or debug.time_unix_nano > t0
    assert debug.observed_time_unix_nano > 0


def test_key_value_helper_matches_protobuf() -> None:
    """Guards the comparison helpers above: a wrong kind must be told apart from a right one."""
    kvs = [KeyValue(key="n", value=AnyValue(double_value=1.0))]
    with pytest.raises(AssertionError):
        _assert_typed_attributes(kvs, {"n": 1})
    _assert_typed_attributes(kvs, {"n": 1.0})
