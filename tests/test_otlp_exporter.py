"""The ``otlp`` exporter against real OTLP servers on loopback.

The backends are real servers started in the test: a ``grpc.aio`` server implementing
TraceService/MetricsService/LogsService and an aiohttp server implementing the OTLP/HTTP
paths. Both record the bytes they receive and can be told to answer with a given
status, so every branch of the OTLP retry rules is exercised over a real connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import gc
import logging
import shutil
import struct
import subprocess
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from pydantic import ValidationError

from bench import workload
from exporters.otlp import OtlpExporterConfig, factory
from exporters.otlp.exporter import OtlpExporter, parse_retry_after
from otel_receiver.component import (
    Batch,
    ComponentSettings,
    PermanentExportError,
    RequestContext,
    RetryableExportError,
)
from otel_receiver.telemetry import SelfTelemetry

T0 = 1_763_700_000_000_000_000
TRACES: Batch = workload.generate_trace_requests(1, 30, seed=9, start_time_ns=T0)[0]
METRICS: Batch = workload.generate_metrics_requests(1, 10, seed=9, start_time_ns=T0)[0]
LOGS: Batch = workload.generate_logs_requests(1, 10, seed=9, start_time_ns=T0)[0]
SERVICES: dict[str, type[Message]] = {
    "opentelemetry.proto.collector.trace.v1.TraceService": ExportTraceServiceRequest,
    "opentelemetry.proto.collector.metrics.v1.MetricsService": ExportMetricsServiceRequest,
    "opentelemetry.proto.collector.logs.v1.LogsService": ExportLogsServiceRequest,
}


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def make_exporter(telemetry: SelfTelemetry | None = None, config_dir: str = ".", **cfg: Any) -> OtlpExporter:
    config = OtlpExporterConfig.model_validate(cfg)
    settings = ComponentSettings(
        component_id="otlp/test",
        telemetry=telemetry or SelfTelemetry(),
        logger=logging.getLogger("test.otlp"),
        config_dir=config_dir,
    )
    exporter = factory.create(config, settings)
    assert isinstance(exporter, OtlpExporter)
    return exporter


def retry_info_status(code: grpc.StatusCode, seconds: int) -> bytes:
    detail = AnyProto()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=Duration(seconds=seconds)))
    return status_pb2.Status(code=code.value[0], message="busy", details=[detail]).SerializeToString()


@dataclass
class Answer:
    code: grpc.StatusCode = grpc.StatusCode.OK
    details: str = ""
    retry_seconds: int | None = None
    delay: float = 0.0
    response: bytes = b""


@dataclass
class GrpcBackend:
    """A real OTLP/gRPC server; records (service, request bytes, metadata) of every call."""

    answer: Answer = field(default_factory=Answer)
    received: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    server: grpc.aio.Server | None = None
    port: int = 0

    def _handler(self, service: str) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]:
        async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            md = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
            self.received.append((service, request, md))
            a = self.answer
            if a.delay:
                await asyncio.sleep(a.delay)
            if a.code is not grpc.StatusCode.OK:
                trailers: tuple[tuple[str, bytes], ...] = ()
                if a.retry_seconds is not None:
                    trailers = (("grpc-status-details-bin", retry_info_status(a.code, a.retry_seconds)),)
                await context.abort(a.code, a.details, trailing_metadata=trailers)
            return a.response

        return export

    async def start(self, credentials: grpc.ServerCredentials | None = None) -> str:
        self.server = grpc.aio.server()
        for service in SERVICES:
            handler = grpc.unary_unary_rpc_method_handler(self._handler(service))
            self.server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(service, {"Export": handler}),)
            )
        if credentials is None:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        else:
            self.port = self.server.add_secure_port("127.0.0.1:0", credentials)
        await self.server.start()
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0)


@dataclass
class HttpBackend:
    """A real OTLP/HTTP server (aiohttp); records (path, decompressed body, headers)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    received: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        # aiohttp undoes Content-Encoding itself; Content-Length tells what was on the wire.
        body = await request.read()
        self.received.append((request.path, body, dict(request.headers)))
        return web.Response(
            status=self.status, body=self.body, headers=self.headers, content_type="application/x-protobuf"
        )

    async def start(self, ssl_context: Any = None) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for path in ("/v1/traces", "/v1/metrics", "/v1/logs", "/custom/traces"):
            app.router.add_post(path, self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def export_once(exporter: OtlpExporter, batch: Batch) -> None:
    await exporter.start()
    try:
        await exporter.export(batch, RequestContext())
    finally:
        await exporter.shutdown()


# --- gRPC ---------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_grpc_sends_each_signal_as_is_with_headers(compression: str) -> None:
    async def scenario() -> GrpcBackend:
        backend = GrpcBackend()
        endpoint = await backend.start()
        exporter = make_exporter(
            endpoint=endpoint,
            compression=compression,
            headers={"Authorization": "Bearer t0k", "x-tenant": "a"},
        )
        await exporter.start()
        try:
            for batch in (TRACES, METRICS, LOGS):
                await exporter.export(batch, RequestContext())
        finally:
            await exporter.shutdown()
            await backend.stop()
        return backend

    backend = run(scenario())
    assert [service for service, _, _ in backend.received] == list(SERVICES)
    for (service, body, md), sent in zip(backend.received, (TRACES, METRICS, LOGS), strict=True):
        assert SERVICES[service].FromString(body) == sent
        assert body == sent.SerializeToString()
        assert md["authorization"] == "Bearer t0k" and md["x-tenant"] == "a"
        assert md["user-agent"].startswith("otel-genai-receiver/")


@pytest.mark.parametrize(
    ("code", "retry_seconds", "retryable", "delay"),
    [
        (grpc.StatusCode.UNAVAILABLE, 3, True, 3.0),
        (grpc.StatusCode.UNAVAILABLE, None, True, None),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 2, True, 2.0),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, None, False, None),
        (grpc.StatusCode.INVALID_ARGUMENT, None, False, None),
        (grpc.StatusCode.UNAUTHENTICATED, None, False, None),
        (grpc.StatusCode.ABORTED, None, True, None),
        (grpc.StatusCode.INTERNAL, None, False, None),
    ],
)
def test_grpc_status_mapping(
    code: grpc.StatusCode, retry_seconds: int | None, retryable: bool, delay: float | None
) -> None:
    async def scenario() -> Exception:
        backend = GrpcBackend(Answer(code=code, details="no thanks", retry_seconds=retry_seconds))
        exporter = make_exporter(endpoint=await backend.start())
        try:
            await export_once(exporter, TRACES)
        except (RetryableExportError, PermanentExportError) as e:
            return e
        finally:
            await backend.stop()
        raise AssertionError("export did not fail")

    error = run(scenario())
    assert isinstance(error, RetryableExportError if retryable else PermanentExportError)
    assert code.name in str(error) and "no thanks" in str(error)
    if isinstance(error, RetryableExportError):
        assert error.retry_after == delay


def test_grpc_unreachable_and_deadline_are_retryable() -> None:
    async def scenario() -> tuple[Exception, Exception]:
        # A port nothing listens on: bind one, then close the server.
        backend = GrpcBackend()
        endpoint = await backend.start()
        await backend.stop()
        errors: list[Exception] = []
        try:
            await export_once(make_exporter(endpoint=endpoint, timeout=2), TRACES)
        except RetryableExportError as e:
            errors.append(e)
        slow = GrpcBackend(Answer(delay=2.0))
        try:
            await export_once(make_exporter(endpoint=await slow.start(), timeout=0.3), TRACES)
        except RetryableExportError as e:
            errors.append(e)
        finally:
            await slow.stop()
        assert len(errors) == 2
        return errors[0], errors[1]

    unreachable, deadline = run(scenario())
    assert "UNAVAILABLE" in str(unreachable)
    assert "DEADLINE_EXCEEDED" in str(deadline)


def test_partial_success_is_counted_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    response = ExportTraceServiceResponse()
    response.partial_success.rejected_spans = 7
    response.partial_success.error_message = "7 spans too old"
    telemetry = SelfTelemetry()

    async def scenario() -> None:
        backend = GrpcBackend(Answer(response=response.SerializeToString()))
        exporter = make_exporter(telemetry, endpoint=await backend.start())
        try:
            await export_once(exporter, TRACES)
        finally:
            await backend.stop()

    with caplog.at_level(logging.WARNING, logger="exporters.otlp"):
        run(scenario())
    labels = {"exporter": "otlp/test", "signal": "traces"}
    assert telemetry.value("otel_receiver_otlp_rejected_items_total", labels) == 7
    assert "rejected 7 traces: 7 spans too old" in caplog.text
    # A second exporter on the same registry shares the counter instead of failing.
    make_exporter(telemetry, endpoint="127.0.0.1:1")


def test_rejected_counter_follows_its_registry_not_its_address() -> None:
    """A collected registry's counter is forgotten with it.

    Keyed by ``id()``, a new registry allocated at a dead one's address got the dead one's
    counter, so its rejections were counted where no one could read them (a CI flake).
    """
    from exporters.otlp import exporter as otlp_exporter

    gc.collect()
    before = len(otlp_exporter._REJECTED._objects)
    for _ in range(50):
        telemetry = SelfTelemetry()
        exporter = make_exporter(telemetry, endpoint="127.0.0.1:1")
        exporter._rejected.labels("otlp/test", "traces").inc(3)
        labels = {"exporter": "otlp/test", "signal": "traces"}
        assert telemetry.value("otel_receiver_otlp_rejected_items_total", labels) == 3
        del telemetry, exporter
        gc.collect()
        assert len(otlp_exporter._REJECTED._objects) <= before


# --- HTTP ---------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_http_posts_protobuf_to_signal_paths(compression: str) -> None:
    async def scenario() -> HttpBackend:
        backend = HttpBackend()
        url = await backend.start()
        exporter = make_exporter(
            endpoint=url + "/", protocol="http", compression=compression, headers={"x-api-key": "k1"}
        )
        await exporter.start()
        try:
            for batch in (TRACES, METRICS, LOGS):
                await exporter.export(batch, RequestContext())
        finally:
            await exporter.shutdown()
            await backend.stop()
        return backend

    backend = run(scenario())
    assert [path for path, _, _ in backend.received] == ["/v1/traces", "/v1/metrics", "/v1/logs"]
    for (_, body, headers), sent in zip(backend.received, (TRACES, METRICS, LOGS), strict=True):
        assert body == sent.SerializeToString()
        assert headers["Content-Type"] == "application/x-protobuf"
        assert headers["x-api-key"] == "k1"
        assert headers.get("Content-Encoding") == ("gzip" if compression == "gzip" else None)
        wire = int(headers["Content-Length"])
        assert wire < len(body) / 2 if compression == "gzip" else wire == len(body)


def test_http_signal_endpoint_override() -> None:
    async def scenario() -> HttpBackend:
        backend = HttpBackend()
        url = await backend.start()
        exporter = make_exporter(
            endpoint="http://127.0.0.1:1", protocol="http", traces_endpoint=url + "/custom/traces"
        )
        try:
            await export_once(exporter, TRACES)
        finally:
            await backend.stop()
        return backend

    backend = run(scenario())
    assert [path for path, _, _ in backend.received] == ["/custom/traces"]


def _http_date(seconds_ahead: int) -> str:
    return email.utils.format_datetime(
        dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds_ahead), usegmt=True
    )


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "delay"),
    [
        (429, {"Retry-After": "5"}, True, 5.0),
        (503, {"Retry-After": "HTTP-DATE+30"}, True, 30.0),
        (502, {}, True, None),
        (504, {}, True, None),
        (400, {}, False, None),
        (401, {}, False, None),
        (413, {}, False, None),
        (500, {}, False, None),
    ],
)
def test_http_status_mapping(
    status: int, headers: dict[str, str], retryable: bool, delay: float | None
) -> None:
    headers = {k: (_http_date(30) if v == "HTTP-DATE+30" else v) for k, v in headers.items()}
    body = status_pb2.Status(code=3, message="bad spans").SerializeToString()

    async def scenario() -> Exception:
        backend = HttpBackend(status=status, body=body, headers=headers)
        exporter = make_exporter(endpoint=await backend.start(), protocol="http")
        try:
            await export_once(exporter, TRACES)
        except (RetryableExportError, PermanentExportError) as e:
            return e
        finally:
            await backend.stop()
        raise AssertionError("export did not fail")

    error = run(scenario())
    assert isinstance(error, RetryableExportError if retryable else PermanentExportError)
    assert f"HTTP {status}: bad spans" in str(error)
    if isinstance(error, RetryableExportError):
        if delay is None:
            assert error.retry_after is None
        else:
            assert error.retry_after is not None and abs(error.retry_after - delay) <= 2


def test_http_connection_refused_is_retryable() -> None:
    async def scenario() -> None:
        backend = HttpBackend()
        url = await backend.start()
        await backend.stop()
        await export_once(make_exporter(endpoint=url, protocol="http", timeout=2), TRACES)

    with pytest.raises(RetryableExportError, match="failed"):
        run(scenario())


def test_parse_retry_after() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:10 GMT", now) == 10.0
    assert parse_retry_after("Wed, 31 Dec 2025 23:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


# --- TLS ----------------------------------------------------------------------------


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed: cannot make a test certificate")
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_grpc_tls_with_ca_file(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)

    async def scenario() -> GrpcBackend:
        backend = GrpcBackend()
        creds = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
        endpoint = await backend.start(creds)
        # Relative ca_file resolves against the config's directory.
        exporter = make_exporter(config_dir=str(tmp_path), endpoint=endpoint, tls={"ca_file": "cert.pem"})
        assert exporter.tls
        try:
            await export_once(exporter, TRACES)
            # Without the CA the handshake fails: retryable UNAVAILABLE, nothing received.
            with pytest.raises(RetryableExportError, match="UNAVAILABLE"):
                await export_once(
                    make_exporter(endpoint=endpoint, tls={"insecure": False}, timeout=3), TRACES
                )
        finally:
            await backend.stop()
        return backend

    backend = run(scenario())
    assert len(backend.received) == 1 and backend.received[0][1] == TRACES.SerializeToString()


def test_http_tls_with_ca_file(tmp_path: Path) -> None:
    import ssl

    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def scenario() -> HttpBackend:
        backend = HttpBackend()
        url = await backend.start(server_ctx)
        try:
            await export_once(
                make_exporter(endpoint=url, protocol="http", tls={"ca_file": str(cert)}), TRACES
            )
            with pytest.raises(RetryableExportError):
                await export_once(make_exporter(endpoint=url, protocol="http", timeout=3), TRACES)
        finally:
            await backend.stop()
        return backend

    backend = run(scenario())
    assert len(backend.received) == 1


# --- config -------------------------------------------------------------------------


def test_config_defaults_and_validation() -> None:
    loopback = OtlpExporterConfig(endpoint="127.0.0.1:4317")
    assert loopback.protocol == "grpc" and loopback.compression == "gzip"
    assert not loopback.uses_tls()
    assert not OtlpExporterConfig(endpoint="localhost:4317").uses_tls()
    assert OtlpExporterConfig(endpoint="jaeger.example.com:4317").uses_tls()
    assert not OtlpExporterConfig.model_validate(
        {"endpoint": "jaeger.example.com:4317", "tls": {"insecure": True}}
    ).uses_tls()
    assert OtlpExporterConfig(endpoint="https://jaeger.example.com:4317").uses_tls()
    assert OtlpExporterConfig.model_validate(
        {"endpoint": "127.0.0.1:4317", "tls": {"ca_file": "ca.pem"}}
    ).uses_tls()
    bad: list[dict[str, Any]] = [
        {"endpoint": "127.0.0.1:4317", "compresion": "gzip"},  # unknown key
        {"endpoint": "127.0.0.1:4317", "protocol": "websocket"},
        {"endpoint": "127.0.0.1:4317", "compression": "zstd"},
        {"endpoint": "127.0.0.1", "protocol": "grpc"},
        {"endpoint": "127.0.0.1:4318", "protocol": "http"},
        {"endpoint": "127.0.0.1:4317", "tls": {"cert_file": "c.pem"}},
        {"endpoint": "127.0.0.1:4317", "tls": {"insecure": True, "ca_file": "ca.pem"}},
        {"endpoint": "127.0.0.1:4317", "headers": {"bad name": "x"}},
        {"endpoint": "127.0.0.1:4317", "traces_endpoint": "http://x/v1/traces"},
    ]
    for cfg in bad:
        with pytest.raises(ValidationError):
            OtlpExporterConfig.model_validate(cfg)


# --- end to end: receiver -> otlp exporter -> receiver -------------------------------


def _read_proto_file(path: Path) -> list[bytes]:
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


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_receiver_forwards_to_another_receiver(
    receiver_factory: Callable[..., Any], tmp_path: Path, protocol: str
) -> None:
    out = tmp_path / "downstream.pb"
    downstream = receiver_factory(f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0"}}
      http: {{endpoint: "127.0.0.1:0"}}
exporters:
  file: {{path: "{out}", format: proto}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [file]}}
""")
    endpoint = downstream.grpc_endpoint if protocol == "grpc" else downstream.http_url
    upstream = receiver_factory(f"""
receivers:
  otlp:
    protocols:
      http: {{endpoint: "127.0.0.1:0"}}
exporters:
  otlp/next:
    endpoint: "{endpoint}"
    protocol: {protocol}
    headers: {{x-forwarded-by: upstream}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [otlp/next]}}
""")
    body = TRACES.SerializeToString()
    req = urllib.request.Request(
        upstream.http_url + "/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not _read_proto_file(out):
        time.sleep(0.05)
    written = _read_proto_file(out)
    assert len(written) == 1
    assert ExportTraceServiceRequest.FromString(written[0]) == TRACES
    labels = {"exporter": "otlp/next", "signal": "traces"}
    assert upstream.telemetry.value("otel_receiver_exported_items_total", labels) == 30
