"""batch processor, file and debug exporters inside a real receiver on loopback (OTLP/HTTP)."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_receiver import otlp_json
from otel_receiver.component import count_items

EXAMPLES = Path(__file__).parent / "fixtures" / "otlp-examples"


def _post(url: str, body: bytes, content_type: str) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=10) as response:
        status: int = response.status
        return status


def _spans(request_index: int, n: int) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i in range(n):
        scope.spans.add(
            name=f"req{request_index}-span{i}",
            trace_id=(request_index + 1).to_bytes(16, "big"),  # all-zero ids are invalid
            span_id=(i + 1).to_bytes(8, "big"),
        )
    return request


def _config(tmp_path: Path, timeout: str) -> str:
    return f"""
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
processors:
  batch:
    send_batch_size: 10
    send_batch_max_size: 10
    timeout: {timeout}
exporters:
  file:
    path: {tmp_path / "traces.jsonl"}
  file/metrics:
    path: {tmp_path / "metrics.jsonl"}
  file/logs:
    path: {tmp_path / "logs.jsonl"}
  debug:
    verbosity: detailed
    output: {tmp_path / "debug.txt"}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [file, debug]
    metrics:
      receivers: [otlp]
      exporters: [file/metrics]
    logs:
      receivers: [otlp]
      exporters: [file/logs, debug]
"""


def _read(path: Path, request_type: Any) -> list[Any]:
    return [otlp_json.decode(request_type, line) for line in path.read_bytes().splitlines()]


def test_batches_of_protobuf_and_json_requests_reach_the_file_exactly_once(
    receiver_factory: Any, tmp_path: Path
) -> None:
    receiver = receiver_factory(_config(tmp_path, "60s"))
    sent: list[str] = []
    for r in range(7):
        request = _spans(r, 4)
        sent.extend(s.name for s in request.resource_spans[0].scope_spans[0].spans)
        if r % 2:
            status = _post(f"{receiver.http_url}/v1/traces", otlp_json.encode(request), "application/json")
        else:
            status = _post(
                f"{receiver.http_url}/v1/traces", request.SerializeToString(), "application/x-protobuf"
            )
        assert status == 200
    # 28 spans, batches of exactly 10 once 10 are waiting: two sent, 8 wait for the
    # 60 s timeout, and the clean shutdown must flush them.
    deadline = time.monotonic() + 10
    target = tmp_path / "traces.jsonl"
    while time.monotonic() < deadline and (not target.exists() or target.read_bytes().count(b"\n") < 2):
        time.sleep(0.02)
    assert [count_items(b) for b in _read(target, ExportTraceServiceRequest)] == [10, 10]
    receiver.stop()
    batches = _read(target, ExportTraceServiceRequest)
    assert [count_items(b) for b in batches] == [10, 10, 8]
    received = [s.name for b in batches for rs in b.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert received == sent
    debug_text = (tmp_path / "debug.txt").read_text()
    assert debug_text.count("Span #") == 28
    assert "req6-span3" in debug_text


def test_official_json_examples_pass_through_unchanged(receiver_factory: Any, tmp_path: Path) -> None:
    receiver = receiver_factory(_config(tmp_path, "50ms"))
    cases: list[tuple[str, str, type[Message], str]] = [
        ("traces", "trace.json", ExportTraceServiceRequest, "traces.jsonl"),
        ("metrics", "metrics.json", ExportMetricsServiceRequest, "metrics.jsonl"),
        ("logs", "logs.json", ExportLogsServiceRequest, "logs.jsonl"),
    ]
    for path, example, _, _ in cases:
        body = (EXAMPLES / example).read_bytes()
        assert _post(f"{receiver.http_url}/v1/{path}", body, "application/json") == 200
    receiver.stop()
    for _, example, request_type, output in cases:
        expected = otlp_json.decode(request_type, (EXAMPLES / example).read_bytes())
        assert _read(tmp_path / output, request_type) == [expected]
    assert "Body: Str(Example log record)" in (tmp_path / "debug.txt").read_text()
