# ruff: noqa: F811  (pytest fixtures imported from test_clickhouse_support)
"""OpenTelemetry SDK -> receiver (OTLP/HTTP and gRPC) -> embedded ClickHouse, column by column.

The SDK's own OTLP exporters send to a real receiver on loopback whose pipelines end
in the ``clickhouse`` exporter. Each exporter is wrapped to keep the exact protobuf
request it sent (the SDK's encoder output); the stored rows are compared column by
column with those requests. The summary metric type, which the Python SDK cannot
produce, is sent as a hand-built OTLP/HTTP request.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry import trace as trace_api
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from exporters.clickhouse.client import EmbeddedStore
from exporters.clickhouse.query import run_query
from tests.test_clickhouse_support import (  # noqa: F401  (fixtures)
    check_logs,
    check_metrics,
    check_traces,
    clickhouse_dir,
    metrics_request,
)

RESOURCE: dict[str, Any] = {
    "service.name": "e2e-svc",
    "service.version": "1.0",
    "host.cpu.count": 2,
    "ratio": 0.25,
}
ATTRIBUTES: dict[str, Any] = {
    "str": "héllo <wörld> & ✓",
    "bool": True,
    "int": -(2**63),
    "float": 3.25,
    "float.small": 1e-9,
    "bytes": b"\x00\xff",
    "str.seq": ["a", "", "ü"],
    "bool.seq": [True, False],
    "int.seq": [1, -2],
    "float.seq": [0.5, 1e22],
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 321,
    "gen_ai.usage.output_tokens": 45,
    "gen_ai.usage.cost": 0.000075,
}


class StoreReader:
    """Reads the receiver's store from the test process (the engine is shared in-process)."""

    def __init__(self, path: Path, database: str) -> None:
        self.store = EmbeddedStore(str(path), database)
        self.database = database

    def rows(self, sql: str) -> list[dict[str, Any]]:
        out = self.store.query(sql.format(db=self.database), "JSONEachRow", readonly=False)
        return [orjson.loads(line) for line in out.splitlines() if line.strip()]

    def count(self, table: str) -> int:
        return int(self.rows(f"SELECT count() AS n FROM `{{db}}`.`{table}`")[0]["n"])

    def wait_for(self, table: str, n: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.count(table) < n:
            assert time.monotonic() < deadline, (
                f"{table}: {self.count(table)} rows after {timeout}s, expected {n}"
            )
            time.sleep(0.1)


class Recorded:
    """Wraps an SDK OTLP exporter to keep the protobuf requests it sends."""

    def __init__(self, exporter: Any, encode: Callable[[Any], Any]) -> None:
        self.exporter = exporter
        self.encode = encode
        self.sent: list[Any] = []
        self._preferred_temporality = getattr(exporter, "_preferred_temporality", {})
        self._preferred_aggregation = getattr(exporter, "_preferred_aggregation", {})

    def export(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        self.sent.append(self.encode(data))
        return self.exporter.export(data, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.exporter, name)


@pytest.fixture
def receiver(receiver_factory: Any, clickhouse_dir: Path) -> Iterator[tuple[Any, StoreReader]]:
    database = "e2e_" + uuid.uuid4().hex[:10]
    r = receiver_factory(
        f"""
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
      http:
        endpoint: 127.0.0.1:0
exporters:
  clickhouse:
    endpoint: embedded:{clickhouse_dir}
    database: {database}
    query_endpoint: null
    sending_queue:
      batch:
        enabled: true
        min_size: 10000
        flush_timeout: 0.2
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [clickhouse]
    metrics:
      receivers: [otlp]
      exporters: [clickhouse]
    logs:
      receivers: [otlp]
      exporters: [clickhouse]
"""
    )
    reader = StoreReader(clickhouse_dir, database)
    try:
        yield r, reader
    finally:
        r.stop()
        reader.store.close()


def test_sdk_traces_round_trip(receiver: tuple[Any, StoreReader]) -> None:
    r, reader = receiver
    http = Recorded(OTLPSpanExporter(endpoint=f"{r.http_url}/v1/traces", timeout=10), encode_spans)
    grpc = Recorded(GrpcSpanExporter(endpoint=r.grpc_endpoint, insecure=True, timeout=10), encode_spans)
    for exporter, label in ((http, "http"), (grpc, "grpc")):
        provider = TracerProvider(resource=Resource({**RESOURCE, "transport": label}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[arg-type]
        tracer = provider.get_tracer("e2e.scope", "0.1.0")
        remote = SpanContext(
            trace_id=0x0AF7651916CD43DD8448EB211C80319C,
            span_id=0xB7AD6B7169203331,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
            trace_state=TraceState([("vendor", "value")]),
        )
        root = tracer.start_span(
            f"root {label}",
            context=trace_api.set_span_in_context(trace_api.NonRecordingSpan(remote)),
            kind=SpanKind.SERVER,
            attributes=ATTRIBUTES,
        )
        child = tracer.start_span(
            f"child {label}",
            context=trace_api.set_span_in_context(root),
            kind=SpanKind.CLIENT,
            links=[Link(remote, attributes={"link.int": 3, "link.seq": [1.5, 2.5]})],
        )
        child.add_event("retry", attributes={"attempt": 2, "ok": False})
        child.set_status(Status(StatusCode.ERROR, "upstream 503"))
        child.end()
        for kind in (SpanKind.INTERNAL, SpanKind.PRODUCER, SpanKind.CONSUMER):
            tracer.start_span(
                f"{kind.name} {label}", context=trace_api.set_span_in_context(root), kind=kind
            ).end()
        root.set_status(Status(StatusCode.OK))
        root.end()
        provider.shutdown()
    sent = http.sent + grpc.sent
    reader.wait_for("otel_traces", 10)
    assert check_traces(reader, sent) == 10
    # The GenAI roots became genai_calls rows; nothing else did. The view's part is
    # committed just after the otel_traces part of the same insert.
    reader.wait_for("genai_calls", 2)
    calls = reader.rows("SELECT RequestModel, InputTokens, toString(CostUsd) AS c FROM `{db}`.genai_calls")
    assert calls == [{"RequestModel": "gpt-4o-mini", "InputTokens": 321, "c": "0.000075"}] * 2


def test_sdk_metrics_round_trip(receiver: tuple[Any, StoreReader]) -> None:
    r, reader = receiver
    exporter = Recorded(OTLPMetricExporter(endpoint=f"{r.http_url}/v1/metrics", timeout=10), encode_metrics)
    reader_sdk = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)  # type: ignore[arg-type]
    provider = MeterProvider(
        resource=Resource(RESOURCE),
        metric_readers=[reader_sdk],
        views=[View(instrument_name="exp.latency", aggregation=ExponentialBucketHistogramAggregation())],
    )
    meter = provider.get_meter("e2e.meter", "2.0")
    counter = meter.create_counter("app.requests", unit="{request}", description="requests")
    counter.add(3, {"route": "/a"})
    counter.add(4, {"route": "/b", "ok": True})
    meter.create_up_down_counter("app.inflight").add(-2, {"pool": "x"})
    histogram = meter.create_histogram(
        "app.latency", unit="ms", explicit_bucket_boundaries_advisory=[10.0, 100.0]
    )
    for v in (5, 50, 500):
        histogram.record(v, {"route": "/a"})
    exp = meter.create_histogram("exp.latency", unit="s")
    for seconds in (0.001, 0.5, 2.0, 40.0):
        exp.record(seconds)

    def temperature(options: CallbackOptions) -> list[Observation]:
        return [Observation(21.5, {"room": "a"}), Observation(-3, {"room": "b"})]

    meter.create_observable_gauge("app.temperature", callbacks=[temperature], unit="Cel")
    assert provider.force_flush(10_000)
    provider.shutdown()
    # A summary (the SDK has none) through the same OTLP/HTTP endpoint.
    summary_request = metrics_request()
    req = urllib.request.Request(
        f"{r.http_url}/v1/metrics",
        data=summary_request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    sent = [*exporter.sent, summary_request]
    expected: dict[str, int] = {}
    for request in sent:
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    expected[kind] = expected.get(kind, 0) + len(getattr(m, kind).data_points)
    assert set(expected) == {"gauge", "sum", "histogram", "exponential_histogram", "summary"}
    deadline = time.monotonic() + 30
    while {k: reader.count(f"otel_metrics_{k}") for k in expected} != expected:
        assert time.monotonic() < deadline, {k: reader.count(f"otel_metrics_{k}") for k in expected}
        time.sleep(0.1)
    assert check_metrics(reader, sent) == expected


def test_sdk_logs_round_trip(receiver: tuple[Any, StoreReader]) -> None:
    r, reader = receiver
    exporter = Recorded(OTLPLogExporter(endpoint=f"{r.http_url}/v1/logs", timeout=10), encode_logs)
    provider = LoggerProvider(resource=Resource(RESOURCE))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))  # type: ignore[arg-type]
    logger = provider.get_logger("e2e.logger", "3.0", attributes={"scope.attr": "s"})
    span = TracerProvider().get_tracer("ctx").start_span("correlated")
    t0 = 1_763_700_000_000_000_001
    logger.emit(
        timestamp=t0,
        observed_timestamp=t0 + 5,
        context=trace_api.set_span_in_context(span),
        severity_number=SeverityNumber.WARN,
        severity_text="WARN",
        body="disk almost full: 91% ✓",
        attributes=ATTRIBUTES,
        event_name="disk.pressure",
    )
    logger.emit(
        timestamp=t0 + 10,
        severity_number=SeverityNumber.ERROR3,
        severity_text="ERROR",
        body={"message": "structured", "code": 17, "tags": ["a", "b"], "ratio": 0.5},
    )
    logger.emit(timestamp=t0 + 20, severity_number=SeverityNumber.DEBUG, body=b"\x00raw\xff")
    span.end()
    assert provider.force_flush(10_000)
    provider.shutdown()
    reader.wait_for("otel_logs", 3)
    assert check_logs(reader, exporter.sent) == 3
    body = reader.rows("SELECT Body FROM `{db}`.otel_logs WHERE SeverityText = 'ERROR'")[0]["Body"]
    assert body == '{"code":17,"message":"structured","ratio":0.5,"tags":["a","b"]}'


def test_sdk_genai_event_with_deep_structure_round_trips(receiver: tuple[Any, StoreReader]) -> None:
    """The gen_ai.choice event of the OTel OpenAI instrumentation nests five levels, deeper
    than the views decode: the exporter renders it, the row equals the Collector's text."""
    r, reader = receiver
    exporter = Recorded(OTLPLogExporter(endpoint=f"{r.http_url}/v1/logs", timeout=10), encode_logs)
    provider = LoggerProvider(resource=Resource(RESOURCE))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))  # type: ignore[arg-type]
    logger = provider.get_logger("opentelemetry.instrumentation.openai_v2")
    tool_call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    body = {
        "index": 0,
        "finish_reason": "tool_calls",
        "message": {"role": "assistant", "tool_calls": [tool_call]},
    }
    messages = [{"role": "user", "parts": [{"type": "text", "content": "Weather in <Paris>?"}]}]
    logger.emit(
        timestamp=1_763_700_000_000_000_100,
        severity_number=SeverityNumber.INFO,
        body=body,
        attributes={"gen_ai.provider.name": "openai", "gen_ai.input.messages": messages},  # type: ignore[dict-item]
        event_name="gen_ai.choice",
    )
    assert provider.force_flush(10_000)
    provider.shutdown()
    reader.wait_for("otel_logs", 1)
    assert check_logs(reader, exporter.sent) == 1
    row = reader.rows("SELECT Body, LogAttributes AS a FROM `{db}`.otel_logs")[0]
    assert row["Body"] == (
        '{"finish_reason":"tool_calls","index":0,"message":{"role":"assistant","tool_calls":'
        '[{"function":{"arguments":"{}","name":"get_weather"},"id":"call_1","type":"function"}]}}'
    )
    assert row["a"]["gen_ai.input.messages"] == (
        '[{"parts":[{"content":"Weather in \\u003cParis\\u003e?","type":"text"}],"role":"user"}]'
    )


def test_run_query_reads_the_receivers_store(receiver: tuple[Any, StoreReader]) -> None:
    """In-process the engine is shared, so the CLI helper reads the running store directly."""
    r, reader = receiver
    provider = TracerProvider(resource=Resource(RESOURCE))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{r.http_url}/v1/traces")))
    provider.get_tracer("q").start_span("one", attributes=ATTRIBUTES).end()
    provider.shutdown()
    reader.wait_for("genai_calls", 1)
    cfg = r.service.config.exporters["clickhouse"].config
    out = run_query(cfg, "SELECT ServiceName, RequestModel FROM genai_calls", "json")
    assert orjson.loads(out) == {"ServiceName": "e2e-svc", "RequestModel": "gpt-4o-mini"}


def test_store_outage_through_the_running_queue_stores_every_span_once(
    receiver: tuple[Any, StoreReader],
) -> None:
    """The traces table goes away while the receiver runs: requests are still accepted,
    the queue retries with backoff, and once the table is back every span is stored once."""
    r, reader = receiver
    db = reader.database
    reader.store.execute(f"DETACH TABLE `{db}`.otel_traces")
    sent = 0
    try:
        provider = TracerProvider(resource=Resource(RESOURCE))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{r.http_url}/v1/traces")))
        tracer = provider.get_tracer("outage")
        for i in range(25):
            tracer.start_span(f"op-{i}").end()
            sent += 1
        provider.shutdown()
        deadline = time.monotonic() + 30
        while r.telemetry.total("otel_receiver_export_retries_total", exporter="clickhouse") < 2:
            assert time.monotonic() < deadline, "the queue never retried"
            time.sleep(0.1)
    finally:
        reader.store.execute(f"ATTACH TABLE `{db}`.otel_traces")
    deadline = time.monotonic() + 60
    while r.telemetry.total("otel_receiver_exported_items_total", exporter="clickhouse") < sent:
        assert time.monotonic() < deadline, "spans not exported after the table came back"
        time.sleep(0.1)
    rows = reader.rows("SELECT count() AS n, uniqExact(SpanId) AS u FROM `{db}`.otel_traces")
    assert rows == [{"n": sent, "u": sent}]
    assert r.telemetry.total("otel_receiver_dropped_items_total") == 0
