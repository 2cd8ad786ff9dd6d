# ruff: noqa: F811  (pytest fixtures imported from test_clickhouse_support)
"""Tenant and actor come from credentials, never from attributes a client could forge.

A real receiver with API-key auth, the audit and genai_cost processors, and three real
exporters (embedded ClickHouse, Prometheus, a protobuf file): a client authenticated as
tenant ``attacker`` sends spans that claim ``audit.tenant.id = victim`` over gRPC,
OTLP/HTTP protobuf and OTLP/JSON (with the key's dot escaped, which no byte search of
the body would find).
"""

from __future__ import annotations

import logging
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from test_clickhouse_e2e import StoreReader
from test_clickhouse_support import clickhouse_dir  # noqa: F401
from test_prometheus_helpers import samples_of, total
from test_receiver_protocol import TRACES, grpc_call, http_post

from exporters.file.exporter import read_records
from otel_receiver.attributes import any_value_to_python
from otel_receiver.component import ComponentSettings, RequestContext
from otel_receiver.ingest import remove_reserved_attributes
from otel_receiver.otlp_json import encode
from otel_receiver.telemetry import SelfTelemetry
from processors.audit import AuditConfig, AuditProcessor
from semconv import attributes as a

KEY = "audit-test-key-0123456789"
FORGED = {a.AUDIT_TENANT_ID: "victim", a.AUDIT_ACTOR_ID: "ceo", a.AUDIT_ACTION: "approve"}


def _kv(key: str, value: Any) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, str):
        kv.value.string_value = value
    else:
        kv.value.int_value = value
    return kv


def genai_request(span_id: int, forged: dict[str, str]) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([_kv("service.name", "svc"), *(_kv(k, v) for k, v in forged.items())])
    span = rs.scope_spans.add().spans.add()
    span.trace_id = span_id.to_bytes(16, "big")
    span.span_id = span_id.to_bytes(8, "big")
    span.name = "chat gpt-4o"
    span.kind = Span.SPAN_KIND_CLIENT
    span.start_time_unix_nano = time.time_ns() - 2_000_000_000
    span.end_time_unix_nano = span.start_time_unix_nano + 1_000_000_000
    span.attributes.extend(
        [
            _kv(a.GEN_AI_OPERATION_NAME, "chat"),
            _kv(a.GEN_AI_PROVIDER_NAME, "openai"),
            _kv(a.GEN_AI_REQUEST_MODEL, "gpt-4o"),
            _kv(a.GEN_AI_USAGE_INPUT_TOKENS, 1000),
            _kv(a.GEN_AI_USAGE_OUTPUT_TOKENS, 100),
            *(_kv(k, v) for k, v in forged.items()),
        ]
    )
    event = span.events.add(name="gen_ai.choice", time_unix_nano=span.end_time_unix_nano)
    event.attributes.extend(_kv(k, v) for k, v in forged.items())
    return req


def _attrs(attributes: Any) -> list[tuple[str, Any]]:
    return [(kv.key, any_value_to_python(kv.value)) for kv in attributes]


@pytest.fixture
def audited(
    receiver_factory: Callable[..., Any], clickhouse_dir: Path, tmp_path: Path
) -> Iterator[tuple[Any, StoreReader, Path]]:
    database = "audit_" + uuid.uuid4().hex[:10]
    out = tmp_path / "traces.pb"
    r = receiver_factory(
        f"""
receivers:
  otlp:
    protocols: {{grpc: {{endpoint: "127.0.0.1:0"}}, http: {{endpoint: "127.0.0.1:0"}}}}
    auth:
      api_keys: [{{key: "{KEY}", tenant: attacker, actor: bot}}]
processors: {{audit: {{trail: {{exporter: clickhouse, flush_interval: 0.2}}}}, genai_cost: {{}}}}
exporters:
  clickhouse:
    endpoint: embedded:{clickhouse_dir}
    database: {database}
    query_endpoint: null
    sending_queue: {{batch: {{flush_timeout: 0.2}}}}
  prometheus: {{endpoint: "127.0.0.1:0"}}
  file: {{path: "{out}", format: proto}}
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [audit, genai_cost], exporters: [clickhouse, prometheus, file]}}
"""
    )
    reader = StoreReader(clickhouse_dir, database)
    try:
        yield r, reader, out
    finally:
        reader.store.close()


def test_forged_tenant_never_reaches_storage_or_metrics(audited: tuple[Any, StoreReader, Path]) -> None:
    r, reader, out = audited
    auth = {"x-api-key": KEY}
    assert (
        http_post(r.http_url, "/v1/traces", genai_request(1, FORGED).SerializeToString(), headers=auth)[0]
        == 200
    )
    grpc_call(
        r.grpc_endpoint,
        TRACES,
        genai_request(2, FORGED).SerializeToString(),
        metadata=(("authorization", f"Bearer {KEY}"),),
    )
    # OTLP/JSON may escape any character of a key: "audit\u002etenant.id" is the same key.
    body = encode(genai_request(3, FORGED)).replace(b'"audit.', b'"audit\\u002e')
    assert b"audit." not in body
    assert http_post(r.http_url, "/v1/traces", body, "application/json", headers=auth)[0] == 200

    reader.wait_for("genai_calls", 3)
    rows = reader.rows("SELECT ResourceAttributes AS r FROM `{db}`.otel_traces")
    assert [row["TenantId"] for row in reader.rows("SELECT TenantId FROM `{db}`.genai_calls")] == [
        "attacker"
    ] * 3
    assert all(not any(k.startswith("audit.") for k in row["r"]) for row in rows)

    spans = []
    for raw in read_records(out, "proto"):
        spans += [
            (rs, span)
            for rs in ExportTraceServiceRequest.FromString(raw).resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]
    assert len(spans) == 3
    record_ids: list[str] = []
    for rs, span in spans:
        audit = dict((k, v) for k, v in _attrs(span.attributes) if k.startswith("audit."))
        record_ids.append(audit.pop(a.AUDIT_RECORD_ID))
        # the forged action "approve" is gone; the action is what the span did
        assert audit == {
            a.AUDIT_ACTOR_ID: "bot",
            a.AUDIT_TENANT_ID: "attacker",
            a.AUDIT_ACTION: "chat",
            a.AUDIT_RESOURCE_TYPE: "model",
        }
        assert not [k for k, _ in _attrs(rs.resource.attributes) if k.startswith("audit.")]
        assert not [k for k, _ in _attrs(span.events[0].attributes) if k.startswith("audit.")]

    # The audit trail names the authenticated principal too, and links every span.
    reader.wait_for("audit_log", 7)  # chain open + per request: ingest and its chat call
    trail = reader.rows("SELECT * FROM `{db}`.audit_log ORDER BY Seq")
    assert [row["Action"] for row in trail].count("ingest") == 3
    assert {row["TenantId"] for row in trail[1:]} == {"attacker"}
    assert {row["ActorId"] for row in trail[1:]} == {"bot"}
    by_id = {row["RecordId"]: row for row in trail}
    for record_id, (_, span) in zip(record_ids, spans, strict=True):
        row = by_id[record_id]
        assert (row["Action"], row["ResourceType"], row["ResourceId"]) == ("chat", "model", "gpt-4o")
        assert row["SpanId"] == span.span_id.hex() and row["TraceId"] == span.trace_id.hex()
    assert "victim" not in str(trail) and "approve" not in str(trail)

    url = r.service.exporters["prometheus"].url
    with urllib.request.urlopen(url, timeout=10) as resp:
        samples, _ = samples_of(resp.read().decode())
    assert total(samples, "gen_ai_client_cost_usd_total", tenant_id="attacker") > 0
    assert total(samples, "gen_ai_client_cost_usd_total", tenant_id="victim") == 0
    # three attributes at each of three places (resource, span, event), three requests
    assert r.telemetry.total("otel_receiver_removed_reserved_attributes_total") == 27


def _run(proc: AuditProcessor, batch: Any, context: RequestContext) -> Any:
    out = proc.process(batch, context)
    assert out is batch
    return out


def _proc(**cfg: Any) -> AuditProcessor:
    return AuditProcessor(
        AuditConfig(**cfg), ComponentSettings("audit", SelfTelemetry(), logging.getLogger("audit"))
    )


def test_without_a_principal_nothing_is_written() -> None:
    req = genai_request(1, {})
    before = req.SerializeToString()
    _run(_proc(), req, RequestContext(transport="http", may_hold_audit_attributes=False))
    assert req.SerializeToString() == before


def test_upstream_tier_values_are_kept_and_missing_ones_filled() -> None:
    """Behind ``trust_audit_attributes`` the request may already carry a tier's values."""
    req = genai_request(1, {a.AUDIT_TENANT_ID: "acme"})
    _run(
        _proc(), req, RequestContext(tenant="gateway-tenant", actor="gateway", may_hold_audit_attributes=True)
    )
    span = req.resource_spans[0].scope_spans[0].spans[0]
    audit = sorted((k, v) for k, v in _attrs(span.attributes) if k.startswith("audit."))
    assert audit == [
        (a.AUDIT_ACTION, "chat"),
        (a.AUDIT_ACTOR_ID, "gateway"),
        (a.AUDIT_RESOURCE_TYPE, "model"),
        (a.AUDIT_TENANT_ID, "acme"),
    ]


def test_logs_get_item_attributes_and_metrics_their_resource() -> None:
    proc = _proc(actor=False)
    ctx = RequestContext(tenant="acme", actor="bot", may_hold_audit_attributes=False)
    logs = ExportLogsServiceRequest()
    for body in ("a", "b"):
        logs.resource_logs.add().scope_logs.add().log_records.add().body.string_value = body
    _run(proc, logs, ctx)
    for rl in logs.resource_logs:
        assert _attrs(rl.scope_logs[0].log_records[0].attributes) == [(a.AUDIT_TENANT_ID, "acme")]
    metrics = ExportMetricsServiceRequest()
    rm = metrics.resource_metrics.add()
    rm.resource.attributes.append(_kv("service.name", "svc"))
    point = rm.scope_metrics.add().metrics.add(name="m").gauge.data_points.add(as_int=1)
    _run(proc, metrics, ctx)
    assert _attrs(rm.resource.attributes) == [("service.name", "svc"), (a.AUDIT_TENANT_ID, "acme")]
    assert not point.attributes


def test_reserved_attributes_are_removed_from_every_place() -> None:
    traces = genai_request(1, FORGED)
    span = traces.resource_spans[0].scope_spans[0].spans[0]
    span.links.add(trace_id=bytes(range(16)), span_id=bytes(range(8))).attributes.extend(
        [_kv(a.AUDIT_RECORD_ID, "r1"), _kv("keep", "me")]
    )
    traces.resource_spans[0].scope_spans[0].scope.attributes.append(_kv(a.AUDIT_RESOURCE_TYPE, "x"))
    assert remove_reserved_attributes(traces) == 3 * 3 + 2
    assert b"audit." not in traces.SerializeToString()
    assert _attrs(span.links[0].attributes) == [("keep", "me")]

    metrics = ExportMetricsServiceRequest()
    rm = metrics.resource_metrics.add()
    rm.resource.attributes.append(_kv(a.AUDIT_TENANT_ID, "x"))
    m = rm.scope_metrics.add().metrics.add(name="h")
    m.histogram.data_points.add().attributes.append(_kv(a.AUDIT_ACTOR_ID, "y"))
    m2 = rm.scope_metrics[0].metrics.add(name="s")
    m2.sum.data_points.add().attributes.extend([_kv(a.AUDIT_TENANT_ID, "z"), _kv("ok", 1)])
    assert remove_reserved_attributes(metrics) == 3
    assert _attrs(m2.sum.data_points[0].attributes) == [("ok", 1)]

    logs = ExportLogsServiceRequest()
    rec = logs.resource_logs.add().scope_logs.add().log_records.add()
    rec.attributes.extend([_kv("a", "1"), _kv(a.AUDIT_TENANT_ID, "x"), _kv("audit", "not reserved")])
    assert remove_reserved_attributes(logs) == 1
    assert _attrs(rec.attributes) == [("a", "1"), ("audit", "not reserved")]


def test_trusting_receiver_keeps_what_its_tier_wrote(
    receiver_factory: Callable[..., Any], tmp_path: Path
) -> None:
    out = tmp_path / "t.pb"
    r = receiver_factory(
        f"""
receivers:
  otlp:
    protocols: {{http: {{endpoint: "127.0.0.1:0"}}}}
    auth:
      api_keys: [{{key: "{KEY}", tenant: gateway-tenant, actor: gateway}}]
    trust_audit_attributes: true
processors: {{audit: {{}}}}
exporters: {{file: {{path: "{out}", format: proto}}}}
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [audit], exporters: [file]}}
"""
    )
    body = genai_request(1, FORGED).SerializeToString()
    assert http_post(r.http_url, "/v1/traces", body, headers={"x-api-key": KEY})[0] == 200
    deadline = time.monotonic() + 10
    while r.telemetry.total("otel_receiver_exported_items_total", exporter="file") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (raw,) = list(read_records(out, "proto"))
    span = ExportTraceServiceRequest.FromString(raw).resource_spans[0].scope_spans[0].spans[0]
    # the tier's values are kept; only what it did not write is added
    written = {k: v for k, v in _attrs(span.attributes) if k.startswith("audit.")}
    assert written == {**FORGED, a.AUDIT_RESOURCE_TYPE: "model"}
    assert r.telemetry.total("otel_receiver_removed_reserved_attributes_total") == 0
