"""End to end through a real receiver: workload traces, the genai_cost processor, and the
prometheus exporter next to a file exporter that records exactly what was exported."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from test_prometheus_helpers import samples_of, total

import semconv
from bench.workload import generate_trace_requests
from exporters.file.exporter import read_records
from otel_receiver.attributes import pick

AGENT_OPS = {semconv.OP_INVOKE_AGENT, semconv.OP_CREATE_AGENT, semconv.OP_EXECUTE_TOOL}


def _expected(requests: list[ExportTraceServiceRequest]) -> tuple[float, int, int]:
    """(cost, input tokens, GenAI spans) over what the file exporter wrote."""
    cost, tokens, calls = 0.0, 0, 0
    keys = {semconv.GEN_AI_USAGE_COST, semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_OPERATION_NAME}
    for req in requests:
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    found = pick(span.attributes, keys)
                    op = found.get(semconv.GEN_AI_OPERATION_NAME)
                    if op is None:
                        continue
                    calls += 1
                    if semconv.GEN_AI_USAGE_COST in found:
                        cost += found[semconv.GEN_AI_USAGE_COST].double_value
                    internal_agent = op.string_value in AGENT_OPS and span.kind != Span.SPAN_KIND_CLIENT
                    if semconv.GEN_AI_USAGE_INPUT_TOKENS in found and not internal_agent:
                        tokens += found[semconv.GEN_AI_USAGE_INPUT_TOKENS].int_value
    return cost, tokens, calls


def test_genai_cost_pipeline_totals_match_what_was_exported(receiver_factory: Any, tmp_path: Path) -> None:
    out = tmp_path / "traces.pb"
    receiver = receiver_factory(
        f"""
receivers: {{otlp: {{protocols: {{http: {{endpoint: "127.0.0.1:0"}}}}}}}}
processors: {{genai_cost: {{}}}}
exporters:
  prometheus: {{endpoint: "127.0.0.1:0"}}
  file: {{path: "{out}", format: proto}}
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [genai_cost], exporters: [prometheus, file]}}
"""
    )
    requests = generate_trace_requests(6, 40, seed=11)
    for req in requests:
        http = urllib.request.Request(
            receiver.http_url + "/v1/traces",
            data=req.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        with urllib.request.urlopen(http, timeout=10) as resp:
            assert resp.status == 200
    url = receiver.service.exporters["prometheus"].url
    deadline = time.monotonic() + 30
    while True:
        exported = receiver.telemetry.total("otel_receiver_exported_items_total", exporter="prometheus")
        written = receiver.telemetry.total("otel_receiver_exported_items_total", exporter="file")
        if exported == written == 240 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert exported == written == 240
    records = []
    for body in read_records(out, "proto"):
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        records.append(req)
    cost, tokens, calls = _expected(records)
    assert cost > 0 and tokens > 0
    with urllib.request.urlopen(url, timeout=10) as resp:
        samples, _ = samples_of(resp.read().decode())
    assert total(samples, "gen_ai_client_cost_usd_total") == pytest.approx(cost, rel=1e-9)
    assert total(samples, "gen_ai_client_token_usage_sum", gen_ai_token_type="input") == tokens
    assert total(samples, "gen_ai_client_operation_duration_seconds_count") == calls
    assert total(samples, "otel_receiver_received_items_total", signal="traces") == 240
