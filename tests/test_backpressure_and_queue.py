"""Backpressure reaches clients, retries deliver exactly once, the persistent queue survives crashes."""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.workload import generate_trace_requests
from exporters.clickhouse.config import ClickHouseConfig
from otel_receiver.component import (
    REQUEST_TYPES,
    Batch,
    ComponentSettings,
    Exporter,
    ExporterConfig,
    PermanentExportError,
    RequestContext,
    RetryableExportError,
    Signal,
    signal_of,
)
from otel_receiver.queue import ExporterQueue
from otel_receiver.registry import REGISTRY
from otel_receiver.telemetry import SelfTelemetry
from tests.components import RecordingConfig, RecordingExporter
from tests.conftest import free_port

TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def request_with_ids(first_id: int, n: int) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(n):
        s = ss.spans.add()
        s.trace_id = (first_id + i + 1).to_bytes(16, "big")
        s.span_id = (first_id + i + 1).to_bytes(8, "big")
        s.name = f"span-{first_id + i}"
    return req


def exported_span_ids(name: str) -> list[int]:
    ids = []
    for sig, raw, _ in RecordingExporter.RECORDS.get(name, []):
        msg = REQUEST_TYPES[sig]()
        msg.ParseFromString(raw)
        for rs in msg.resource_spans:
            for ss in rs.scope_spans:
                ids.extend(int.from_bytes(s.span_id, "big") for s in ss.spans)
    return ids


def test_slow_exporter_throttles_clients_and_retries_deliver_exactly_once(receiver_factory: object) -> None:
    r = receiver_factory(  # type: ignore[operator]
        """
receivers: {otlp: {protocols: {grpc: {endpoint: "127.0.0.1:0"}, http: {endpoint: "127.0.0.1:0"}}}}
exporters:
  recording: {name: backpressure, delay: 0.02, sending_queue: {queue_size: 6, num_consumers: 1}}
service: {pipelines: {traces: {receivers: [otlp], exporters: [recording]}}}
"""
    )
    per_request, requests_per_client = 3, 25
    throttled = {"grpc": 0, "http": 0}

    def grpc_client(base: int) -> None:
        with grpc.insecure_channel(r.grpc_endpoint) as ch:
            call = ch.unary_unary(TRACES)
            for k in range(requests_per_client):
                body = request_with_ids(base + k * per_request, per_request).SerializeToString()
                while True:
                    try:
                        call(body, timeout=10)
                        break
                    except grpc.RpcError as e:
                        assert e.code() == grpc.StatusCode.UNAVAILABLE
                        throttled["grpc"] += 1
                        time.sleep(0.01)

    def http_client(base: int) -> None:
        u = urlparse(r.http_url)
        for k in range(requests_per_client):
            body = request_with_ids(base + k * per_request, per_request).SerializeToString()
            while True:
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
                conn.request(
                    "POST", "/v1/traces", body=body, headers={"Content-Type": "application/x-protobuf"}
                )
                resp = conn.getresponse()
                resp.read()
                conn.close()
                if resp.status == 200:
                    break
                assert resp.status == 503 and resp.getheader("Retry-After") == "1"
                throttled["http"] += 1
                time.sleep(0.01)

    threads = [
        threading.Thread(target=grpc_client, args=(0,)),
        threading.Thread(target=grpc_client, args=(10_000,)),
        threading.Thread(target=http_client, args=(20_000,)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    r.stop()
    ids = exported_span_ids("backpressure")
    expected = {
        b + k * per_request + i + 1
        for b in (0, 10_000, 20_000)
        for k in range(requests_per_client)
        for i in range(per_request)
    }
    assert throttled["grpc"] > 0 and throttled["http"] > 0
    assert len(ids) == len(expected), "a span was exported twice or lost"
    assert set(ids) == expected
    assert r.telemetry.total("otel_receiver_dropped_items_total") == 0


def _run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_retry_with_backoff_until_backend_recovers() -> None:
    async def scenario() -> None:
        tel = SelfTelemetry()
        cfg = RecordingConfig(
            name="outage",
            retry_on_failure={"initial_interval": 0.01, "max_interval": 0.05},  # type: ignore[arg-type]
        )
        exporter = RecordingExporter(cfg, _settings(tel))
        q = ExporterQueue("recording", exporter, cfg, tel)
        await q.start()
        RecordingExporter.FAILING["outage"] = True
        q.put(request_with_ids(0, 4), RequestContext())
        await asyncio.sleep(0.3)
        assert exported_span_ids("outage") == []
        assert tel.value("otel_receiver_export_retries_total", {"exporter": "recording"}) >= 3
        RecordingExporter.FAILING["outage"] = False
        await q.drain(5)
        assert sorted(exported_span_ids("outage")) == [1, 2, 3, 4]

    _run(scenario())


def test_retries_exhausted_are_counted_as_dropped() -> None:
    async def scenario() -> None:
        tel = SelfTelemetry()
        cfg = RecordingConfig(
            name="dead",
            retry_on_failure={"initial_interval": 0.01, "max_interval": 0.02, "max_elapsed_time": 0.1},  # type: ignore[arg-type]
        )
        RecordingExporter.FAILING["dead"] = True
        q = ExporterQueue("recording", RecordingExporter(cfg, _settings(tel)), cfg, tel)
        await q.start()
        q.put(request_with_ids(0, 3), RequestContext())
        await q.drain(5)
        assert (
            tel.value(
                "otel_receiver_dropped_items_total",
                {"component": "recording", "signal": "traces", "reason": "retries_exhausted"},
            )
            == 3
        )

    _run(scenario())


def test_queue_coalesces_requests_with_stable_dedup_tokens(tmp_path: Path) -> None:
    async def scenario() -> None:
        tel = SelfTelemetry()
        cfg = RecordingConfig(
            name="coalesce",
            sending_queue={
                "batch": {"enabled": True, "min_size": 10, "flush_timeout": 0.2},
                "num_consumers": 1,
            },  # type: ignore[arg-type]
        )
        q = ExporterQueue("recording", RecordingExporter(cfg, _settings(tel)), cfg, tel)
        for k in range(5):
            q.put(request_with_ids(k * 2, 2), RequestContext(tenant="t"))
        await q.start()
        await q.drain(5)
        records = RecordingExporter.RECORDS["coalesce"]
        assert len(records) == 1  # five requests of two spans, merged into one export of ten
        assert records[0][2].dedup_token is not None and records[0][2].dedup_token.endswith(":1-5")
        assert records[0][2].tenant == "t"

    _run(scenario())


@pytest.mark.parametrize(
    ("max_size", "expected_sizes"),
    [
        (0, [10, 10, 10, 10]),  # no cap: batches end at min_size
        (25, [24, 16]),  # a backlog rides along up to max_size (whole requests only)
    ],
)
def test_backlog_is_merged_up_to_max_size(max_size: int, expected_sizes: list[int]) -> None:
    async def scenario() -> None:
        tel = SelfTelemetry()
        name = f"backlog-{max_size}"
        cfg = RecordingConfig(
            name=name,
            sending_queue={
                "batch": {"enabled": True, "min_size": 10, "max_size": max_size, "flush_timeout": 0.2},
                "num_consumers": 1,
            },  # type: ignore[arg-type]
        )
        q = ExporterQueue("recording", RecordingExporter(cfg, _settings(tel)), cfg, tel)
        for k in range(20):  # a backlog of 40 spans before the consumer starts
            q.put(request_with_ids(k * 2, 2), RequestContext())
        await q.start()
        await q.drain(5)
        records = RecordingExporter.RECORDS[name]
        sizes = []
        for sig, raw, _ in records:
            msg = REQUEST_TYPES[sig]()
            msg.ParseFromString(raw)
            sizes.append(sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans))
        assert sizes == expected_sizes
        assert sorted(exported_span_ids(name)) == list(range(1, 41))

    _run(scenario())


def test_max_size_below_min_size_is_a_config_error() -> None:
    with pytest.raises(ValueError, match=r"max_size \(5\) must be 0 or at least min_size \(10\)"):
        RecordingConfig(sending_queue={"batch": {"min_size": 10, "max_size": 5}})  # type: ignore[arg-type]


def test_persistent_queue_replays_after_crash_with_same_groups(tmp_path: Path) -> None:
    storage = tmp_path / "queue"

    async def first_life() -> None:
        tel = SelfTelemetry()
        cfg = RecordingConfig(
            name="crash1",
            retry_on_failure={"initial_interval": 0.01},  # type: ignore[arg-type]
            sending_queue={
                "storage": str(storage),
                "num_consumers": 1,
                "batch": {"enabled": True, "min_size": 4},
            },  # type: ignore[arg-type]
        )
        RecordingExporter.FAILING["crash1"] = True
        q = ExporterQueue("recording", RecordingExporter(cfg, _settings(tel)), cfg, tel)
        await q.start()
        for k in range(3):
            q.put(request_with_ids(k * 2, 2), RequestContext())
        await asyncio.sleep(0.2)  # the consumer claimed a group and is retrying it
        # "crash": no drain, no ack; the tasks die with the loop
        for t in q._consumers:
            t.cancel()

    async def second_life() -> list[str | None]:
        tel = SelfTelemetry()
        cfg = RecordingConfig(
            name="crash2",
            sending_queue={
                "storage": str(storage),
                "num_consumers": 1,
                "batch": {"enabled": True, "min_size": 4},
            },  # type: ignore[arg-type]
        )
        q = ExporterQueue("recording", RecordingExporter(cfg, _settings(tel)), cfg, tel)
        await q.start()
        assert q.size == 6
        await q.drain(5)
        return [c.dedup_token for _, _, c in RecordingExporter.RECORDS["crash2"]]

    _run(first_life())
    tokens = _run(second_life())
    assert sorted(exported_span_ids("crash2")) == [1, 2, 3, 4, 5, 6]
    assert (
        isinstance(tokens, list) and tokens[0] is not None and tokens[0].endswith(":1-2")
    )  # claimed group kept
    assert not list(storage.glob("seg-*.log")) or _third_life_is_empty(storage)


def _third_life_is_empty(storage: Path) -> bool:
    async def third() -> int:
        tel = SelfTelemetry()
        cfg = RecordingConfig(name="crash3", sending_queue={"storage": str(storage)})  # type: ignore[arg-type]
        q = ExporterQueue("recording", RecordingExporter(cfg, _settings(tel)), cfg, tel)
        await q.start()
        size = q.size
        await q.drain(1)
        return size

    return _run(third()) == 0


def _settings(tel: SelfTelemetry):  # type: ignore[no-untyped-def]
    import logging

    from otel_receiver.component import ComponentSettings

    return ComponentSettings("recording", tel, logging.getLogger("test"))


def test_queue_config_defaults() -> None:
    c = ExporterConfig()
    assert c.sending_queue.queue_size == 100_000 and c.retry_on_failure.enabled


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_minus_nine_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """A real receiver process with a persistent queue is killed mid-load; after a restart every
    acknowledged span is in the file exporter's output (at least once: the file exporter has no
    deduplication; ClickHouse's exactly-once is tested with its exporter)."""
    out = tmp_path / "out.jsonl"
    port = free_port()
    conf = tmp_path / "conf.yaml"
    conf.write_text(
        f"""
receivers: {{otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:{port}"}}}}}}}}
exporters:
  file: {{path: "{out}", sending_queue: {{storage: "{tmp_path / "q"}"}}}}
service: {{pipelines: {{traces: {{receivers: [otlp], exporters: [file]}}}}}}
"""
    )

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
    acked: list[int] = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_unary(TRACES)
        for k in range(200):
            call(request_with_ids(k * 5, 5).SerializeToString(), timeout=10)
            acked.extend(range(k * 5 + 1, k * 5 + 6))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc = start()
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0

    from otel_receiver import otlp_json

    seen: set[int] = set()
    for line in out.read_text().splitlines():
        msg = otlp_json.decode(ExportTraceServiceRequest, line.encode())
        for rs in msg.resource_spans:
            for ss in rs.scope_spans:
                seen.update(int.from_bytes(s.span_id, "big") for s in ss.spans)
    assert set(acked) <= seen
    assert Signal.TRACES.value == "traces"


def test_health_is_503_and_exports_are_retryable_while_draining(receiver_factory: object) -> None:
    import asyncio as aio

    r = receiver_factory(  # type: ignore[operator]
        """
receivers: {otlp: {protocols: {http: {endpoint: "127.0.0.1:0"}}}}
exporters:
  recording: {name: draining, delay: 1.5, sending_queue: {num_consumers: 1}}
service: {pipelines: {traces: {receivers: [otlp], exporters: [recording]}}}
"""
    )
    u = urlparse(r.http_url)

    def request(method: str, path: str, body: bytes | None = None) -> int:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        conn.request(method, path, body=body, headers={"Content-Type": "application/x-protobuf"})
        status = conn.getresponse().status
        conn.close()
        return status

    assert request("POST", "/v1/traces", request_with_ids(0, 2).SerializeToString()) == 200
    assert request("GET", "/health") == 200
    done = aio.run_coroutine_threadsafe(r.service.shutdown(), r.loop)
    time.sleep(0.3)  # the queue is still exporting the first request (1.5 s)
    assert request("GET", "/health") == 503
    assert request("POST", "/v1/traces", request_with_ids(10, 2).SerializeToString()) == 503
    done.result(30)
    r.stopped = True
    r.loop.call_soon_threadsafe(r.loop.stop)
    assert sorted(exported_span_ids("draining")) == [1, 2]


def test_request_whose_body_arrives_after_processors_flushed_is_refused(receiver_factory: object) -> None:
    """Admission is checked before the body is read. A body that arrives once shutdown
    has flushed the processors (the batch processor would hold its spans forever) must
    get a retryable 503, not a 200 for spans that are never exported."""
    import socket

    r = receiver_factory(  # type: ignore[operator]
        """
receivers: {otlp: {protocols: {http: {endpoint: "127.0.0.1:0"}}}}
processors: {batch: {timeout: 10m}}
exporters:
  recording: {name: late-body, delay: 1.0}
service: {pipelines: {traces: {receivers: [otlp], processors: [batch], exporters: [recording]}}}
"""
    )
    url = urlparse(r.http_url)
    early = request_with_ids(0, 3).SerializeToString()
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    conn.request("POST", "/v1/traces", early, {"Content-Type": "application/x-protobuf"})
    assert conn.getresponse().status == 200  # held by the batch processor until shutdown

    late = request_with_ids(100, 3).SerializeToString()
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    sock.sendall(
        (
            f"POST /v1/traces HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/x-protobuf\r\n"
            f"Content-Length: {len(late)}\r\nConnection: close\r\n\r\n"
        ).encode()
    )
    time.sleep(0.3)  # the handler passed admission and waits for the body
    stopping = asyncio.run_coroutine_threadsafe(r.service.shutdown(), r.loop)  # type: ignore[attr-defined]
    # Processors flush at once; the queue then needs ~1 s to export the early batch.
    time.sleep(0.4)
    assert not stopping.done()
    sock.sendall(late)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 503"), answer[:300]
    assert b"Retry-After" in answer
    stopping.result(30)
    r.stopped = True  # type: ignore[attr-defined]
    assert sorted(exported_span_ids("late-body")) == [1, 2, 3]


def _logs_request(n: int) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    for i in range(n):
        sl.log_records.add().body.string_value = f"log-{i}"
    return req


def test_interleaved_signals_share_a_group_and_export_once_per_signal() -> None:
    """One exporter taking traces and logs: requests arriving in turn, slower than the
    flush timeout allows for a full batch, still make one export per signal per flush
    (a group used to end at every change of signal: one export per request)."""

    async def scenario() -> None:
        tel = SelfTelemetry()
        cfg = RecordingConfig(
            name="interleaved",
            sending_queue={
                "batch": {"enabled": True, "min_size": 1000, "flush_timeout": 0.5},
                "num_consumers": 2,
            },  # type: ignore[arg-type]
        )
        q = ExporterQueue("recording", RecordingExporter(cfg, _settings(tel)), cfg, tel)
        await q.start()
        for k in range(3):
            q.put(request_with_ids(k * 2, 2), RequestContext())
            await asyncio.sleep(0.02)
            q.put(_logs_request(3), RequestContext())
            await asyncio.sleep(0.02)
        await q.drain(5)
        records = RecordingExporter.RECORDS["interleaved"]
        assert [sig for sig, _, _ in records] == [Signal.TRACES, Signal.LOGS]
        assert RecordingExporter.items("interleaved") == 6 + 9
        tokens = [ctx.dedup_token for _, _, ctx in records]
        assert tokens[0] is not None and tokens[0].endswith(":1-6/traces")
        assert tokens[1] is not None and tokens[1].endswith(":1-6/logs")
        exported_logs = {"exporter": "recording", "signal": "logs"}
        assert tel.value("otel_receiver_exported_items_total", exported_logs) == 9

    _run(scenario())


class _LogsDownExporter(RecordingExporter):
    """Fails every logs export until ``logs_failures`` attempts have been refused."""

    logs_failures = 2

    async def export(self, batch: Batch, context: RequestContext) -> None:
        if signal_of(batch) is Signal.LOGS and self.logs_failures:
            self.logs_failures -= 1
            raise RetryableExportError("logs backend down")
        await super().export(batch, context)


def test_a_failing_signal_is_retried_without_exporting_the_others_twice() -> None:
    async def scenario() -> None:
        tel = SelfTelemetry()
        cfg = RecordingConfig(
            name="logs-down",
            sending_queue={"batch": {"enabled": True, "min_size": 1000, "flush_timeout": 0.1}},  # type: ignore[arg-type]
            retry_on_failure={"initial_interval": 0.01},  # type: ignore[arg-type]
        )
        q = ExporterQueue("recording", _LogsDownExporter(cfg, _settings(tel)), cfg, tel)
        q.put(request_with_ids(0, 2), RequestContext())
        q.put(_logs_request(3), RequestContext())
        await q.start()
        await q.drain(5)
        assert [sig for sig, _, _ in RecordingExporter.RECORDS["logs-down"]] == [Signal.TRACES, Signal.LOGS]
        assert tel.value("otel_receiver_export_retries_total", {"exporter": "recording"}) == 2

    _run(scenario())


def test_a_partial_queue_block_keeps_the_exporters_other_defaults() -> None:
    """``sending_queue: {batch: {flush_timeout: 5}}`` changes that key only, as the
    Collector merges a config over its component's defaults."""
    cfg = ClickHouseConfig(sending_queue={"batch": {"flush_timeout": 5.0}})  # type: ignore[arg-type]
    assert cfg.sending_queue.batch.enabled
    assert (cfg.sending_queue.batch.min_size, cfg.sending_queue.batch.max_size) == (10_000, 50_000)
    assert cfg.sending_queue.batch.flush_timeout == 5.0
    assert ClickHouseConfig(sending_queue={"num_consumers": 3}).sending_queue.batch.enabled  # type: ignore[arg-type]


@pytest.mark.parametrize("type_name", ["debug", "prometheus"])
def test_an_exporter_that_declares_it_never_suspends_finishes_in_one_step(type_name: str) -> None:
    """The queue skips the export timeout for ``suspends = False`` exporters: true only
    if their export never suspends, which one ``send`` proves for every signal."""
    factory = REGISTRY.factory("exporters", type_name)
    extra = {"endpoint": "127.0.0.1:0"} if type_name == "prometheus" else {}
    settings = ComponentSettings(type_name, SelfTelemetry(), logging.getLogger("test.suspends"))
    exporter = factory.create(factory.config_model(**extra), settings)
    assert exporter.suspends is False
    traces = generate_trace_requests(2, 20, seed=3)
    for parts in (traces, [ExportLogsServiceRequest()], [ExportMetricsServiceRequest()]):
        coro = exporter.export_parts(parts, RequestContext())
        with pytest.raises(StopIteration):
            coro.send(None)
        # The queue calls this one from ``put`` when nothing is queued ahead.
        assert exporter.exports_now
        exporter.export_now(parts, RequestContext())


def test_the_export_context_copies_every_field() -> None:
    """``with_dedup_token`` lists the fields by hand (``replace`` costs ~5x per export):
    a field added to RequestContext must be added there too."""
    values = {
        "transport": "http", "client_address": "10.0.0.1", "tenant": "acme", "actor": "bob",
        "roles": ("admin",), "received_at_ns": 7, "dedup_token": "old", "may_hold_audit_attributes": False,
        "wire": b"\x0a\x00", "wire_batch": object(), "wire_from_client": True, "objects_lag": True,
        "prescans": {"pii_redaction": (b"\x0a\x00", None)},
    }  # fmt: skip
    assert set(values) == {f.name for f in dataclasses.fields(RequestContext)}
    context = RequestContext(**values)
    assert context.with_dedup_token("new") == dataclasses.replace(context, dedup_token="new")


class _WireReader(Exporter):
    """Records the bytes an exporter that reads the wire finds for the parts it gets."""

    signals = frozenset(Signal)
    uses_wire = True
    suspends = False

    def __init__(self) -> None:
        super().__init__(ExporterConfig(), _settings(SelfTelemetry()))
        self.found: list[bytes | None] = []

    async def export_parts(self, parts: Sequence[Batch], context: RequestContext) -> None:
        pieces = context.wire_pieces_for(parts)
        self.found.append(b"".join(pieces) if pieces is not None else None)

    async def export(self, batch: Batch, context: RequestContext) -> None:
        raise AssertionError("export_parts is overridden")


@pytest.mark.parametrize("batched", [False, True])
def test_the_received_bytes_reach_an_exporter_that_reads_them(batched: bool) -> None:
    """One request alone or several coalesced: the exporter's context holds their bytes,
    bound to the very list of parts it is given (else it would serialize again)."""
    bodies = [r.SerializeToString() for r in generate_trace_requests(3, 10, seed=4)]

    async def run() -> list[bytes | None]:
        exporter = _WireReader()
        batch_cfg = {"enabled": True, "min_size": 30, "flush_timeout": 0.5} if batched else {}
        cfg = ExporterConfig(sending_queue={"num_consumers": 1, "batch": batch_cfg})  # type: ignore[arg-type]
        q = ExporterQueue("wire", exporter, cfg, SelfTelemetry())
        for body in bodies:
            batch = ExportTraceServiceRequest.FromString(body)
            context = RequestContext()
            context.set_wire(batch, body, from_client=True)
            q.put(batch, context)
        await q.start()
        await q.drain(5)
        return exporter.found

    found = asyncio.run(run())
    assert found == ([b"".join(bodies)] if batched else bodies)


class _NowExporter(Exporter):
    """Exports synchronously (``exports_now``); records how each request arrived and can
    be told to fail its first exports."""

    signals = frozenset(Signal)
    uses_wire = True
    suspends = False
    exports_now = True

    def __init__(self, telemetry: SelfTelemetry, failures: list[Exception] | None = None) -> None:
        super().__init__(ExporterConfig(), _settings(telemetry))
        self.failures = failures or []
        self.calls: list[tuple[str, list[int], bytes | None, str | None]] = []

    def export_now(self, parts: Sequence[Batch], context: RequestContext) -> None:
        self._record("now", parts, context)

    async def export_parts(self, parts: Sequence[Batch], context: RequestContext) -> None:
        self._record("consumer", parts, context)

    async def export(self, batch: Batch, context: RequestContext) -> None:
        raise AssertionError("export_parts is overridden")

    def _record(self, how: str, parts: Sequence[Batch], context: RequestContext) -> None:
        if self.failures:
            raise self.failures.pop(0)
        ids = [int.from_bytes(s.span_id, "big") for p in parts for rs in p.resource_spans  # type: ignore[union-attr]
               for ss in rs.scope_spans for s in ss.spans]  # fmt: skip
        pieces = context.wire_pieces_for(parts)
        self.calls.append((how, ids, b"".join(pieces) if pieces is not None else None, context.dedup_token))


def _put_with_wire(q: ExporterQueue, batch: ExportTraceServiceRequest) -> RequestContext:
    context = RequestContext()
    context.set_wire(batch, batch.SerializeToString(), from_client=True)
    q.put(batch, context)
    return context


def test_a_request_with_nothing_queued_ahead_is_exported_by_put_itself() -> None:
    """No consumer is woken for it: the export has happened when ``put`` returns, with the
    request's bytes and a dedup token of its own, in a context that is a copy."""
    telemetry = SelfTelemetry()

    async def run() -> None:
        exporter = _NowExporter(telemetry)
        q = ExporterQueue("now", exporter, ExporterConfig(), telemetry)
        await q.start()
        first, second = request_with_ids(0, 3), request_with_ids(3, 2)
        context = _put_with_wire(q, first)
        assert exporter.calls == [("now", [1, 2, 3], first.SerializeToString(), exporter.calls[0][3])]
        assert exporter.calls[0][3] and context.dedup_token is None
        assert q.size == 0
        _put_with_wire(q, second)
        assert [c[1] for c in exporter.calls] == [[1, 2, 3], [4, 5]]
        assert exporter.calls[0][3] != exporter.calls[1][3]
        await q.drain(5)

    asyncio.run(run())
    assert telemetry.value("otel_receiver_exported_items_total", {"exporter": "now", "signal": "traces"}) == 5


def test_a_failed_export_from_put_is_retried_by_the_queue_and_order_is_kept() -> None:
    """The first request fails in ``put``: it is queued, and the requests after it queue
    behind it (``put`` exports nothing while a request is queued or in flight) until the
    queue is empty again. One consumer, so the queue itself keeps order too."""
    telemetry = SelfTelemetry()

    async def run() -> _NowExporter:
        exporter = _NowExporter(telemetry, [RetryableExportError("busy"), RetryableExportError("busy")])
        cfg = ExporterConfig(
            sending_queue={"num_consumers": 1},  # type: ignore[arg-type]
            retry_on_failure={"initial_interval": 0.01},  # type: ignore[arg-type]
        )
        q = ExporterQueue("now", exporter, cfg, telemetry)
        await q.start()
        for i in range(3):
            _put_with_wire(q, request_with_ids(i * 2, 2))
        assert exporter.calls == [] and q.size == 6
        while q.size:
            await asyncio.sleep(0.01)
        _put_with_wire(q, request_with_ids(6, 1))  # the queue is empty again
        await q.drain(5)
        return exporter

    exporter = asyncio.run(run())
    assert [(how, ids) for how, ids, _, _ in exporter.calls] == [
        ("consumer", [1, 2]),
        ("consumer", [3, 4]),
        ("consumer", [5, 6]),
        ("now", [7]),
    ]
    labels = {"exporter": "now", "signal": "traces"}
    assert telemetry.value("otel_receiver_exported_items_total", labels) == 7
    # Both failed attempts were retried: the one in put and the consumer's first.
    assert telemetry.value("otel_receiver_export_retries_total", {"exporter": "now"}) == 2


def test_a_permanent_error_in_put_drops_the_request_with_its_reason() -> None:
    telemetry = SelfTelemetry()

    async def run() -> _NowExporter:
        exporter = _NowExporter(telemetry, [PermanentExportError("never")])
        q = ExporterQueue("now", exporter, ExporterConfig(), telemetry)
        await q.start()
        _put_with_wire(q, request_with_ids(0, 4))
        _put_with_wire(q, request_with_ids(4, 1))
        await q.drain(5)
        return exporter

    exporter = asyncio.run(run())
    assert [(how, ids) for how, ids, _, _ in exporter.calls] == [("now", [5])]
    labels = {"component": "now", "signal": "traces", "reason": "permanent_error"}
    assert telemetry.value("otel_receiver_dropped_items_total", labels) == 4


@pytest.mark.parametrize("queue", ["batching", "persistent"])
def test_batching_and_persistent_queues_never_export_from_put(queue: str, tmp_path: Path) -> None:
    """Batching waits for more requests; a persistent queue stores a request before its
    export (so a crash replays it): both keep the consumer path."""
    telemetry = SelfTelemetry()
    sending_queue: dict[str, object] = (
        {"batch": {"enabled": True, "min_size": 1}}
        if queue == "batching"
        else {"storage": str(tmp_path / "q")}
    )

    async def run() -> _NowExporter:
        exporter = _NowExporter(telemetry)
        q = ExporterQueue("now", exporter, ExporterConfig(sending_queue=sending_queue), telemetry)  # type: ignore[arg-type]
        await q.start()
        _put_with_wire(q, request_with_ids(0, 2))
        assert exporter.calls == []
        await q.drain(5)
        return exporter

    assert [(how, ids) for how, ids, _, _ in asyncio.run(run()).calls] == [("consumer", [1, 2])]
