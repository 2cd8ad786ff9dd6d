"""The ``otlp`` exporter: forwards processed requests to any OTLP backend over gRPC or HTTP.

The batch is serialized once and sent as-is: a generic unary gRPC call on a
``grpc.aio`` channel carrying the bytes (no stub, no re-encoding), or an aiohttp POST
of ``application/x-protobuf``. Failures are mapped to the OTLP specification's
retry rules so the exporter queue retries exactly what the spec says is retryable:

- gRPC: CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS are
  retryable; RESOURCE_EXHAUSTED only when the server sent ``RetryInfo``; the delay in
  ``RetryInfo`` is honoured. Everything else (INVALID_ARGUMENT, UNAUTHENTICATED, ...)
  is permanent.
- HTTP: 429, 502, 503, 504 are retryable, honouring ``Retry-After`` (seconds or an HTTP
  date); every other non-2xx status is permanent. Connection errors and timeouts are
  retryable.

A ``partial_success`` response is not an error (the spec forbids retrying it): the
rejected count is logged and counted in ``otel_receiver_otlp_rejected_items_total``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import gzip
import logging
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from prometheus_client import CollectorRegistry, Counter

from exporters.otlp.config import OtlpExporterConfig, grpc_target
from otel_receiver import __version__
from otel_receiver.component import (
    Batch,
    ComponentSettings,
    Exporter,
    PermanentExportError,
    RequestContext,
    RetryableExportError,
    Signal,
    signal_of,
)
from otel_receiver.telemetry import PerRegistry

log = logging.getLogger("exporters.otlp")

GRPC_METHODS = {
    Signal.TRACES: "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    Signal.METRICS: "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    Signal.LOGS: "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
HTTP_PATHS = {Signal.TRACES: "/v1/traces", Signal.METRICS: "/v1/metrics", Signal.LOGS: "/v1/logs"}
RESPONSE_TYPES: dict[Signal, type[Message]] = {
    Signal.TRACES: ExportTraceServiceResponse,
    Signal.METRICS: ExportMetricsServiceResponse,
    Signal.LOGS: ExportLogsServiceResponse,
}
REJECTED_FIELDS = {
    Signal.TRACES: "rejected_spans",
    Signal.METRICS: "rejected_data_points",
    Signal.LOGS: "rejected_log_records",
}

RETRYABLE_GRPC_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
RETRYABLE_HTTP_STATUSES = frozenset({429, 502, 503, 504})
STATUS_DETAILS_KEY = "grpc-status-details-bin"
MAX_MESSAGE_CHARS = 200  # backend messages are quoted in errors and logs, bounded
GZIP_IN_THREAD_BYTES = 256 * 1024  # compress larger bodies off the event loop (zlib releases the GIL)

_REJECTED: PerRegistry[Counter] = PerRegistry()


def _new_rejected_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        "otel_receiver_otlp_rejected_items",
        "Items an OTLP backend rejected in a partial_success response",
        ["exporter", "signal"],
        registry=registry,
    )


def _rejected_counter(registry: CollectorRegistry) -> Counter:
    """One counter per registry, shared by every otlp exporter instance registered on it."""
    return _REJECTED.get(registry, _new_rejected_counter)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def retry_info_delay(status_details: bytes | None) -> float | None:
    """Seconds of the ``RetryInfo`` inside a serialized ``google.rpc.Status``, if any."""
    if not status_details:
        return None
    try:
        status = status_pb2.Status.FromString(status_details)
    except DecodeError:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None


def classify_grpc_error(
    code: grpc.StatusCode, details: str | None, status_details: bytes | None
) -> RetryableExportError | PermanentExportError:
    """The OTLP spec's retry decision for a failed gRPC export."""
    message = f"gRPC {code.name}: {_short(details or '')}"
    delay = retry_info_delay(status_details)
    if code in RETRYABLE_GRPC_CODES:
        return RetryableExportError(message, delay)
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None:
        return RetryableExportError(message, delay)
    return PermanentExportError(message)


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def classify_http_error(
    status: int, body: bytes, retry_after: str | None
) -> RetryableExportError | PermanentExportError:
    """The OTLP spec's retry decision for a failed HTTP export."""
    detail = ""
    try:
        detail = status_pb2.Status.FromString(body).message
    except DecodeError:
        detail = body[:MAX_MESSAGE_CHARS].decode("utf-8", "replace") if body else ""
    message = f"HTTP {status}: {_short(detail)}"
    if status in RETRYABLE_HTTP_STATUSES:
        return RetryableExportError(message, parse_retry_after(retry_after))
    return PermanentExportError(message)


class OtlpExporter(Exporter):
    signals = frozenset(Signal)
    uses_wire = True
    accepts_lagging_objects = True  # sends the wire, or objects the queue synced

    def __init__(self, config: OtlpExporterConfig, settings: ComponentSettings) -> None:
        super().__init__(config, settings)
        self.config: OtlpExporterConfig = config
        self.tls = config.uses_tls()
        self._channel: grpc.aio.Channel | None = None
        self._calls: dict[Signal, grpc.aio.UnaryUnaryMultiCallable] = {}
        self._session: aiohttp.ClientSession | None = None
        self._urls = self._http_urls() if config.protocol == "http" else {}
        self._rejected = _rejected_counter(settings.telemetry.registry)
        self._metadata = tuple((k.lower(), v) for k, v in config.headers.items())
        self._headers = {
            "Content-Type": "application/x-protobuf",
            "User-Agent": f"otel-genai-receiver/{__version__}",
            **config.headers,
        }
        if config.compression == "gzip":
            self._headers["Content-Encoding"] = "gzip"

    # set-up -----------------------------------------------------------------------------
    def _path(self, name: str | None) -> Path | None:
        if name is None:
            return None
        path = Path(name).expanduser()
        return path if path.is_absolute() else Path(self.settings.config_dir) / path

    def _read(self, name: str | None) -> bytes | None:
        path = self._path(name)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as e:
            raise ValueError(f"{self.settings.component_id}: cannot read {path}: {e.strerror}") from None

    def _http_urls(self) -> dict[Signal, str]:
        base = self.config.endpoint.rstrip("/")
        overrides = {
            Signal.TRACES: self.config.traces_endpoint,
            Signal.METRICS: self.config.metrics_endpoint,
            Signal.LOGS: self.config.logs_endpoint,
        }
        return {s: overrides[s] or base + HTTP_PATHS[s] for s in Signal}

    async def start(self) -> None:
        if self.config.protocol == "grpc":
            self._start_grpc()
        else:
            self._start_http()

    def _start_grpc(self) -> None:
        host, port = grpc_target(self.config.endpoint)
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        options: list[tuple[str, Any]] = [
            # The exporter queue owns retries and backoff; gRPC's own would multiply them.
            ("grpc.enable_retries", 0),
            ("grpc.primary_user_agent", f"otel-genai-receiver/{__version__}"),
        ]
        tls = self.config.tls
        if tls.server_name_override:
            options.append(("grpc.ssl_target_name_override", tls.server_name_override))
        compression = (
            grpc.Compression.Gzip if self.config.compression == "gzip" else grpc.Compression.NoCompression
        )
        if self.tls:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=self._read(tls.ca_file),
                private_key=self._read(tls.key_file),
                certificate_chain=self._read(tls.cert_file),
            )
            self._channel = grpc.aio.secure_channel(target, credentials, options, compression)
        else:
            self._channel = grpc.aio.insecure_channel(target, options, compression)
        # No (de)serializers: the request is already bytes and the response stays bytes.
        self._calls = {s: self._channel.unary_unary(GRPC_METHODS[s]) for s in Signal}

    def _start_http(self) -> None:
        tls = self.config.tls
        ssl_context: ssl.SSLContext | None = None
        if any(url.startswith("https://") for url in self._urls.values()):
            ca = self._path(tls.ca_file)
            ssl_context = ssl.create_default_context(cafile=str(ca) if ca else None)
            cert, key = self._path(tls.cert_file), self._path(tls.key_file)
            if cert is not None and key is not None:
                ssl_context.load_cert_chain(str(cert), str(key))
        connector = aiohttp.TCPConnector(
            ssl=ssl_context if ssl_context is not None else True,
            limit=max(4, 2 * self.config.sending_queue.num_consumers),
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.config.timeout)
        )

    def describe(self) -> str:
        security = "TLS" if self.tls else "plaintext"
        if self.config.protocol == "http":
            security = "TLS" if self._urls[Signal.TRACES].startswith("https://") else "plaintext"
        return (
            f"{self.settings.component_id}: OTLP/{self.config.protocol} to {self.config.endpoint} "
            f"({security}, compression {self.config.compression})"
        )

    # sending ----------------------------------------------------------------------------
    async def export(self, batch: Batch, context: RequestContext) -> None:
        signal = signal_of(batch)
        # A client's bytes, sent on as they came, decode to the same request.
        body = context.wire_for(batch) or batch.SerializeToString()
        if self.config.protocol == "grpc":
            response = await self._send_grpc(signal, body)
        else:
            response = await self._send_http(signal, body)
        self._check_partial_success(signal, response)

    async def _send_grpc(self, signal: Signal, body: bytes) -> bytes:
        if not self._calls:
            raise RetryableExportError("exporter not started")
        try:
            response: bytes = await self._calls[signal](
                body, timeout=self.config.timeout, metadata=self._metadata
            )
        except grpc.aio.AioRpcError as e:
            trailers = e.trailing_metadata() or ()
            details = next((v for k, v in trailers if k == STATUS_DETAILS_KEY), None)
            raise classify_grpc_error(
                e.code(), e.details(), details if isinstance(details, bytes) else None
            ) from None
        return response

    async def _send_http(self, signal: Signal, body: bytes) -> bytes:
        if self._session is None:
            raise RetryableExportError("exporter not started")
        if self.config.compression == "gzip":
            body = (
                await asyncio.to_thread(gzip.compress, body, 6, mtime=0)
                if len(body) > GZIP_IN_THREAD_BYTES
                else gzip.compress(body, 6, mtime=0)
            )
        url = self._urls[signal]
        server_hostname = self.config.tls.server_name_override
        try:
            async with self._session.post(
                url, data=body, headers=self._headers, allow_redirects=False, server_hostname=server_hostname
            ) as resp:
                data = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as e:
            raise RetryableExportError(
                f"HTTP request to {url} failed: {type(e).__name__}: {_short(str(e))}"
            ) from None
        if 200 <= status < 300:
            return data
        raise classify_http_error(status, data, retry_after)

    def _check_partial_success(self, signal: Signal, response: bytes) -> None:
        if not response:
            return
        try:
            message: Any = RESPONSE_TYPES[signal].FromString(response)
        except DecodeError:
            return  # a success is a success even if the body is not what the spec says
        if not message.HasField("partial_success"):
            return
        rejected = getattr(message.partial_success, REJECTED_FIELDS[signal])
        if rejected:
            self._rejected.labels(self.settings.component_id, signal.value).inc(rejected)
            log.warning(
                "%s: backend rejected %d %s: %s",
                self.settings.component_id,
                rejected,
                signal.value,
                _short(message.partial_success.error_message),
            )

    async def shutdown(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._calls = {}
        if self._session is not None:
            await self._session.close()
            self._session = None


def create(config: OtlpExporterConfig, settings: ComponentSettings) -> OtlpExporter:
    return OtlpExporter(config, settings)
