"""Interoperability with rotel, an independent OTLP implementation (a Rust collector
shipped in the ``rotel`` wheel), in both directions, on loopback only:

(a) rotel as an OTLP *client*: the OpenTelemetry Python SDK (and raw workload
    requests) -> rotel -> rotel's OTLP exporter -> our receiver -> file exporter;
(b) rotel as an OTLP *server*: our receiver -> our ``otlp`` exporter (gRPC and HTTP)
    -> rotel (debug log on) -> rotel's OTLP exporter -> a second receiver of ours.

Every span, data point and log record must arrive intact: compared as protobuf
messages with what was sent.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from bench import workload
from otel_receiver.component import Batch, count_items

T0 = 1_763_700_000_000_000_000
FILES: dict[type, str] = {
    ExportTraceServiceRequest: "traces.pb",
    ExportMetricsServiceRequest: "metrics.pb",
    ExportLogsServiceRequest: "logs.pb",
}


def rotel_binary() -> Path:
    try:
        import rotel
    except ImportError:
        pytest.skip("the rotel wheel is not installed (pip install '.[test]')")
    path = Path(rotel.__file__).parent / "rotel-agent"
    if not path.exists():
        pytest.skip(f"rotel wheel has no collector binary at {path}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"rotel exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"rotel did not listen on {port}: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def rotel(tmp: Path, forward_to: str, *extra: str) -> Iterator[tuple[int, int, Path]]:
    """rotel on free loopback ports, exporting over OTLP/gRPC to ``forward_to``."""
    grpc_port, http_port = free_port(), free_port()
    log = tmp / f"rotel-{grpc_port}.log"
    argv = [
        str(rotel_binary()), "start",
        "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
        "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
        "--pid-file", str(tmp / f"rotel-{grpc_port}.pid"),
        "--log-file", str(tmp / f"rotel-{grpc_port}-daemon.log"),
        "--exporter", "otlp",
        "--otlp-exporter-endpoint", forward_to,
        "--otlp-exporter-protocol", "grpc",
        "--otlp-exporter-retry-initial-backoff", "100ms",
        "--batch-timeout", "50ms",
        *extra,
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(grpc_port, proc, log)
        wait_port(http_port, proc, log)
        yield grpc_port, http_port, log
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def file_receiver_yaml(out: Path) -> str:
    """A receiver writing each signal's requests to ``out/<signal>.pb``."""
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0"}}
      http: {{endpoint: "127.0.0.1:0"}}
exporters:
  file/traces: {{path: "{out}/traces.pb", format: proto}}
  file/metrics: {{path: "{out}/metrics.pb", format: proto}}
  file/logs: {{path: "{out}/logs.pb", format: proto}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [file/traces]}}
    metrics: {{receivers: [otlp], exporters: [file/metrics]}}
    logs: {{receivers: [otlp], exporters: [file/logs]}}
"""


def read_proto_file(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    data, out, i = path.read_bytes(), [], 0
    while i + 4 <= len(data):
        (n,) = struct.unpack(">I", data[i : i + 4])
        if i + 4 + n > len(data):
            break
        out.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    return out


def wait_for_items(out: Path, kind: type[Batch], expected: int, timeout: float = 20) -> list[Any]:
    path = out / FILES[kind]
    deadline = time.monotonic() + timeout
    got: list[Any] = []
    while time.monotonic() < deadline:
        got = [kind.FromString(b) for b in read_proto_file(path)]
        if sum(count_items(m) for m in got) >= expected:
            return got
        time.sleep(0.05)
    raise AssertionError(f"only {sum(count_items(m) for m in got)} of {expected} items arrived in {path}")


def spans_by_id(requests: list[ExportTraceServiceRequest]) -> dict[bytes, tuple[Span, Any, Any]]:
    out = {}
    for req in requests:
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    out[span.span_id] = (span, rs.resource, ss.scope)
    return out


def items_of(requests: list[Any]) -> list[bytes]:
    """Every data point or log record, serialized, with its resource and scope: a multiset
    that must survive re-batching by an intermediate collector."""
    out = []
    for req in requests:
        if isinstance(req, ExportMetricsServiceRequest):
            for rm in req.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        kind = m.WhichOneof("data")
                        for dp in getattr(m, kind).data_points:
                            key = (
                                rm.resource.SerializeToString(),
                                sm.scope.SerializeToString(),
                                m.name,
                                m.unit,
                            )
                            out.append(repr(key).encode() + dp.SerializeToString())
        else:
            for rl in req.resource_logs:
                for sl in rl.scope_logs:
                    for lr in sl.log_records:
                        out.append(rl.resource.SerializeToString() + sl.scope.SerializeToString()
                                   + lr.SerializeToString())  # fmt: skip
    return sorted(out)


def post(url: str, body: bytes) -> None:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def grpc_export(port: int, method: str, body: bytes) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        channel.unary_unary(method)(body, timeout=10)


def sdk_spans(endpoint: str) -> ExportTraceServiceRequest:
    """Spans with every attribute type, events, links, status and kinds, sent by the SDK's
    OTLP/gRPC exporter; returns the request the SDK encoded for comparison."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "interop-sdk", "deployment.tier": 3}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    tracer = provider.get_tracer("interop.test", "1.2.3")
    with tracer.start_as_current_span("invoke_agent Interop", kind=SpanKind.INTERNAL) as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        for i in range(3):
            with tracer.start_as_current_span(
                "chat gpt-4o-mini", kind=SpanKind.CLIENT, links=[Link(root.get_span_context(), {"i": i})]
            ) as span:
                span.set_attributes(
                    {
                        "gen_ai.provider.name": "openai",
                        "gen_ai.usage.input_tokens": 1200 + i,
                        "gen_ai.request.temperature": 0.25,
                        "gen_ai.stream": bool(i % 2),
                        "gen_ai.response.finish_reasons": ["stop", "length"],
                        "token.ids": [1, 2, 3],
                        "scores": [0.5, 1.5],
                    }
                )
                span.add_event("gen_ai.content.prompt", {"gen_ai.prompt": "héllo ✓ " * 20})
                if i == 2:
                    span.set_status(Status(StatusCode.ERROR, "rate limited"))
    provider.force_flush()
    provider.shutdown()
    sent: ExportTraceServiceRequest = encode_spans(memory.get_finished_spans())
    return sent


# --- (a) rotel as an OTLP client of our receiver --------------------------------------


def test_rotel_forwards_sdk_and_workload_data_to_our_receiver(
    receiver_factory: Callable[..., Any], tmp_path: Path
) -> None:
    out = tmp_path / "received"
    ours = receiver_factory(file_receiver_yaml(out))
    with rotel(tmp_path, f"http://{ours.grpc_endpoint}") as (grpc_port, http_port, _):
        sent_sdk = sdk_spans(f"http://127.0.0.1:{grpc_port}")
        genai = workload.generate_trace_requests(2, 50, seed=21, start_time_ns=T0)
        post(f"http://127.0.0.1:{http_port}/v1/traces", genai[0].SerializeToString())
        grpc_export(
            grpc_port,
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            genai[1].SerializeToString(),
        )
        metrics = workload.generate_metrics_requests(1, 20, seed=21, start_time_ns=T0)[0]
        logs = workload.generate_logs_requests(1, 30, seed=21, start_time_ns=T0)[0]
        post(f"http://127.0.0.1:{http_port}/v1/metrics", metrics.SerializeToString())
        grpc_export(
            grpc_port, "/opentelemetry.proto.collector.logs.v1.LogsService/Export", logs.SerializeToString()
        )
        n_spans = count_items(sent_sdk) + 100
        got_traces = wait_for_items(out, ExportTraceServiceRequest, n_spans)
        got_metrics = wait_for_items(out, ExportMetricsServiceRequest, count_items(metrics))
        got_logs = wait_for_items(out, ExportLogsServiceRequest, count_items(logs))

    received = spans_by_id(got_traces)
    expected = spans_by_id([sent_sdk, *genai])
    assert len(received) == len(expected) == n_spans
    for span_id, (span, resource, scope) in expected.items():
        got_span, got_resource, got_scope = received[span_id]
        assert got_span == span, span.name
        assert got_resource == resource
        assert (got_scope.name, got_scope.version) == (scope.name, scope.version)
    assert items_of(got_metrics) == items_of([metrics])
    assert items_of(got_logs) == items_of([logs])


# --- (b) rotel as an OTLP server for our otlp exporter -------------------------------


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_our_otlp_exporter_delivers_to_rotel(
    receiver_factory: Callable[..., Any], tmp_path: Path, protocol: str
) -> None:
    out = tmp_path / "downstream"
    downstream = receiver_factory(file_receiver_yaml(out))
    debug = ("--debug-log", "traces", "--debug-log-verbosity", "detailed")
    with rotel(tmp_path, f"http://{downstream.grpc_endpoint}", *debug) as (grpc_port, http_port, rotel_log):
        endpoint = f"127.0.0.1:{grpc_port}" if protocol == "grpc" else f"http://127.0.0.1:{http_port}"
        upstream = receiver_factory(f"""
receivers:
  otlp:
    protocols:
      http: {{endpoint: "127.0.0.1:0"}}
exporters:
  otlp/rotel:
    endpoint: "{endpoint}"
    protocol: {protocol}
    compression: gzip
    retry_on_failure: {{initial_interval: 0.1}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp/rotel]}}
    logs: {{receivers: [otlp], exporters: [otlp/rotel]}}
""")
        traces = workload.generate_trace_requests(3, 40, seed=33, pii_fraction=0.5, start_time_ns=T0)
        logs = workload.generate_logs_requests(1, 25, seed=33, start_time_ns=T0)[0]
        for req in traces:
            post(upstream.http_url + "/v1/traces", req.SerializeToString())
        post(upstream.http_url + "/v1/logs", logs.SerializeToString())
        got_traces = wait_for_items(out, ExportTraceServiceRequest, 120)
        got_logs = wait_for_items(out, ExportLogsServiceRequest, 25)
        debug_output = rotel_log.read_text(errors="replace")

    received = spans_by_id(got_traces)
    expected = spans_by_id(traces)
    assert len(received) == len(expected) == 120
    for span_id, (span, resource, _) in expected.items():
        assert received[span_id][0] == span
        assert received[span_id][1] == resource
    assert items_of(got_logs) == items_of([logs])
    # rotel's own debug output saw the spans too (its view, not only the forward).
    some_span = next(iter(expected.values()))[0]
    assert some_span.name in debug_output
    for labels in (
        {"exporter": "otlp/rotel", "signal": "traces"},
        {"exporter": "otlp/rotel", "signal": "logs"},
    ):
        assert upstream.telemetry.value("otel_receiver_exported_items_total", labels) > 0
