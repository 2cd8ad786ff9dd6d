# ruff: noqa: F811  (pytest fixture imported from test_clickhouse_support)
"""End to end: the OpenTelemetry SDK sends PII to a receiver running pii_redaction; none of
the original values may appear in anything the receiver writes or forwards.

Receiver A (under test) exports to: the ``file`` exporter (OTLP JSON and protobuf), the
``debug`` exporter (detailed, to a file), embedded ClickHouse (chDB), and the ``otlp``
exporter forwarding to receiver B, whose ``file`` exporter records every forwarded byte.
After both stop, every file is scanned byte for byte, every row of every table in the
ClickHouse database is dumped as JSON and scanned, and so are the receiver's own log
records. The same scan must find the redaction markers, so a test that exported nothing
cannot pass.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, Status, StatusCode

from exporters.clickhouse.config import ClickHouseConfig
from exporters.clickhouse.query import run_query
from semconv import attributes as sc
from tests.conftest import start_receiver
from tests.test_clickhouse_support import clickhouse_dir  # noqa: F401  (fixture)

PII = {
    "email": "olivia.schmidt@proton.me",
    "email2": "k.tanaka@outlook.com",
    "phone": "+44 20 7946 0321",
    "card": "4539 1488 0343 6467",
    "iban": "DE44 5001 0517 5407 3249 31",
    "ssn": "536-90-4399",
    "openai": "sk-proj-9fXk2LmQ7vTz4RbN8cWy1HsJ3dPe6GuA",
    "aws": "AKIAZ7Q3K9M2X4V8B6N1",
    "ip": "81.2.69.142",
    "password": "Tr0ub4dor&3-horse",
}


def _config(tmp: Path, store: Path, database: str, forward: str) -> str:
    exporters = "[file/json, file/proto, debug, clickhouse, otlp/forward]"
    pipeline = f"{{receivers: [otlp], processors: [pii_redaction], exporters: {exporters}}}"
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
processors:
  pii_redaction:
    phone_regions: [US, GB]
exporters:
  file/json: {{path: {tmp / "a.jsonl"}}}
  file/proto: {{path: {tmp / "a.pb"}, format: proto}}
  debug: {{verbosity: detailed, output: {tmp / "debug.txt"}}}
  clickhouse: {{endpoint: "embedded:{store}", database: {database}, query_endpoint: null}}
  otlp/forward: {{endpoint: "{forward}", tls: {{insecure: true}}, compression: none}}
service:
  pipelines:
    traces: {pipeline}
    metrics: {pipeline}
    logs: {pipeline}
"""


def _forward_target(tmp: Path) -> str:
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:0}}
exporters:
  file/forwarded: {{path: {tmp / "b.pb"}, format: proto}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [file/forwarded]}}
    metrics: {{receivers: [otlp], exporters: [file/forwarded]}}
    logs: {{receivers: [otlp], exporters: [file/forwarded]}}
"""


def _send_everything(endpoint: str) -> None:
    p = PII
    resource = Resource({"service.name": "support-bot", "deployment.owner": p["email2"]})
    messages = [
        {"role": "user", "parts": [{"type": "text", "content": f"I'm {p['email']}, call {p['phone']}"}]},
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_1",
                    "name": "refund",
                    "arguments": {"card": p["card"], "iban": p["iban"], "password": p["password"]},
                }
            ],
        },
    ]
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True))
    )
    tracer = tracer_provider.get_tracer("support")
    with tracer.start_as_current_span("setup") as first:
        first.set_attribute("net.peer.ip", p["ip"])
    link = Link(first.get_span_context(), {"link.note": f"from {p['email']}"})
    with tracer.start_as_current_span(f"chat for {p['email']}", links=[link]) as span:
        span.set_attribute(sc.GEN_AI_OPERATION_NAME, "chat")
        span.set_attribute(sc.GEN_AI_INPUT_MESSAGES, json.dumps(messages))
        span.set_attribute(sc.GEN_AI_TOOL_CALL_ARGUMENTS, json.dumps({"ssn": p["ssn"]}))
        span.set_attribute("app.config", f"OPENAI_API_KEY={p['openai']} AWS={p['aws']}")
        span.set_attribute("db.password", p["password"])
        span.set_attribute("user.tags", [p["email"], "vip"])
        span.add_event("exception", {"exception.message": f"card {p['card']} declined"})
        span.set_status(Status(StatusCode.ERROR, f"refund failed for {p['iban']}"))
    assert tracer_provider.force_flush(10_000)
    tracer_provider.shutdown()

    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True))
    )
    logger = logger_provider.get_logger("support")
    logger.emit(
        severity_number=SeverityNumber.INFO,
        body=f"login {p['email']} from {p['ip']}",
        attributes={"ssn": p["ssn"]},
    )
    logger.emit(
        severity_number=SeverityNumber.WARN,
        body={"user": {"email": p["email"], "phones": [p["phone"]]}, "note": f"key {p['openai']}"},
    )
    logger.emit(severity_number=SeverityNumber.DEBUG, body=b"\xff\xfe" + p["card"].encode())
    assert logger_provider.force_flush(10_000)
    logger_provider.shutdown()

    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint, insecure=True), export_interval_millis=60_000
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    counter = meter_provider.get_meter("support").create_counter("support.requests")
    counter.add(1, {"customer.email": p["email"], "route": "/refund"})
    assert meter_provider.force_flush(10_000)
    meter_provider.shutdown()


def _wait_for(path: Path, needles: list[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = path.read_bytes() if path.exists() else b""
        if all(n in data for n in needles):
            return
        time.sleep(0.1)
    raise AssertionError(f"{path.name} did not receive {needles}")


@pytest.mark.timeout(180)
def test_no_original_value_is_stored_forwarded_or_logged(
    tmp_path: Path, clickhouse_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = "pii_" + uuid.uuid4().hex[:10]
    forward = start_receiver(_forward_target(tmp_path))
    receiver = start_receiver(_config(tmp_path, clickhouse_dir, database, forward.grpc_endpoint))
    try:
        with caplog.at_level(logging.DEBUG):
            _send_everything(receiver.grpc_endpoint)
            # Everything forwarded: the last signal sent is metrics.
            _wait_for(tmp_path / "b.pb", [b"support.requests", b"[REDACTED:"])
            receiver.stop()
            forward.stop()
        telemetry = receiver.telemetry
        assert telemetry.total("otel_receiver_pii_redactions_total") >= 20
        assert telemetry.value("otel_receiver_pii_redactions_total", {"type": "EMAIL"}) >= 6
        # Every exporter delivered everything: nothing dropped, so every output is complete.
        assert telemetry.total("otel_receiver_dropped_items_total") == 0, [
            (s.labels, s.value)
            for m in telemetry.registry.collect()
            for s in m.samples
            if s.name == "otel_receiver_dropped_items_total" and s.value
        ]
        for exporter in ("clickhouse", "otlp/forward", "file/json"):
            exported = telemetry.total("otel_receiver_exported_items_total", exporter=exporter)
            assert exported >= 6, (exporter, exported)  # 2 spans, 3 log records, 1+ data point
    finally:
        receiver.stop()
        forward.stop()

    outputs: dict[str, bytes] = {
        name: (tmp_path / name).read_bytes() for name in ("a.jsonl", "a.pb", "debug.txt", "b.pb")
    }
    ch_config = ClickHouseConfig(
        endpoint=f"embedded:{clickhouse_dir}", database=database, query_endpoint=None
    )
    names = [
        json.loads(line)["name"]
        for line in run_query(
            ch_config, f"SELECT name FROM system.tables WHERE database = '{database}'", "json"
        ).splitlines()
        if line.strip()
    ]
    assert {"otel_traces", "otel_logs", "otel_metrics_sum"} <= set(names), names
    for table in names:
        outputs[f"clickhouse:{table}"] = run_query(
            ch_config, f"SELECT * FROM `{database}`.`{table}`", "json"
        ).encode()
    stored_spans = run_query(ch_config, f"SELECT count() AS n FROM `{database}`.otel_traces", "json")
    assert json.loads(stored_spans.splitlines()[0])["n"] in (2, "2")
    outputs["receiver logs"] = caplog.text.encode()

    for where, data in outputs.items():
        for name, value in PII.items():
            # JSON output may escape '&' etc.; check the raw and the JSON-escaped form.
            for form in {value, json.dumps(value)[1:-1], value.replace(" ", "")}:
                assert form.encode() not in data, f"{name} found in {where}"
    for where in ("a.jsonl", "a.pb", "debug.txt", "b.pb", "clickhouse:otel_traces", "clickhouse:otel_logs"):
        assert b"[REDACTED:" in outputs[where], where
    assert b"[REDACTED:EMAIL]" in outputs["clickhouse:otel_metrics_sum"]
    assert b"pii.redacted.count" in outputs["clickhouse:otel_traces"]
    # JSON message attributes were redacted inside and stay valid JSON.
    for line in outputs["a.jsonl"].splitlines():
        doc: Any = json.loads(line)
        for rs in doc.get("resourceSpans", []):
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    for kv in span["attributes"]:
                        if kv["key"] == sc.GEN_AI_INPUT_MESSAGES:
                            parsed = json.loads(kv["value"]["stringValue"])
                            assert parsed[1]["parts"][0]["arguments"]["card"] == "[REDACTED:CREDIT_CARD]"
