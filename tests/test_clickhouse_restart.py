"""A receiver process with a persistent queue into embedded ClickHouse, killed with ``kill -9``.

After a restart every acknowledged span is stored exactly once: the queue replays what
was not acknowledged with the same deduplication tokens, and the tables drop the
inserts they already hold. Along the way the CLI reads the store through the running
receiver's query endpoint, gets a clear error when it cannot, and opens the store
directly once the receiver has stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import free_port

TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _request(first: int, n: int) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "restart-test"
    spans = rs.scope_spans.add().spans
    now = time.time_ns()
    for i in range(first, first + n):
        s = spans.add()
        s.trace_id = i.to_bytes(16, "big")
        s.span_id = i.to_bytes(8, "big")
        s.name = "op"
        s.start_time_unix_nano = now
        s.end_time_unix_nano = now + 1000
    return req


def _cli(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_receiver.cli", *args, "--config", str(conf)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _count(conf: Path) -> dict[str, int]:
    out = _cli(
        conf, "query", "--format", "json", "SELECT count() AS n, uniqExact(SpanId) AS u FROM otel_traces"
    )
    assert out.returncode == 0, out.stderr
    row: dict[str, int] = json.loads(out.stdout)
    return row


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_minus_nine_then_restart_stores_every_acknowledged_span_once(tmp_path: Path) -> None:
    port, query_port = free_port(), free_port()
    store, queue = tmp_path / "store", tmp_path / "queue"
    body = f"""
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:{port}"}}}}}}}}
exporters:
  clickhouse:
    endpoint: "embedded:{store}"
    query_endpoint: "127.0.0.1:{{query_port}}"
    sending_queue:
      storage: "{queue}"
      batch: {{enabled: true, min_size: 10000, flush_timeout: 1.0}}
service: {{pipelines: {{traces: {{receivers: [otlp], exporters: [clickhouse]}}}}}}
"""
    conf = tmp_path / "conf.yaml"
    conf.write_text(body.replace("{query_port}", str(query_port)))
    no_endpoint = tmp_path / "no-endpoint.yaml"
    no_endpoint.write_text(body.replace('"127.0.0.1:{query_port}"', "null"))

    def start() -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [sys.executable, "-m", "otel_receiver.cli", "run", "--config", str(conf)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert p.stdout is not None
        for line in p.stdout:
            if "OTLP/gRPC listening" in line:
                return p
        raise AssertionError("receiver did not start")

    proc = start()
    acked = 0
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = ch.unary_unary(TRACES)
            for k in range(60):
                call(_request(k * 20 + 1, 20).SerializeToString(), timeout=10)
                acked += 20
                if k == 30:
                    time.sleep(1.6)  # let one batch reach the store before the crash
        # within flush_timeout of the 32nd request: those spans are acknowledged, queued
        # on disk and not in the store yet
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stored_at_crash = _count(no_endpoint)["n"]  # the store opened directly, read-only
        assert 0 < stored_at_crash < acked, (stored_at_crash, acked)
        proc = start()
        deadline = time.monotonic() + 60
        while (counts := _count(conf))["n"] < acked:  # through the query endpoint
            assert time.monotonic() < deadline, counts
            time.sleep(0.3)
        busy = _cli(no_endpoint, "query", "SELECT 1")
        assert busy.returncode == 1 and "in use by another process" in busy.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    assert _count(conf) == {"n": acked, "u": acked}  # the store opened directly, read-only
    report = _cli(conf, "report", "--since", "1h")
    assert report.returncode == 0 and "no GenAI calls" in report.stdout
