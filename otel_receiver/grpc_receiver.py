"""OTLP/gRPC: TraceService, MetricsService and LogsService on grpc.aio.

Handlers are registered as generic handlers with no deserializer, so we receive the
raw (already gzip-decompressed, size-limited by gRPC itself) bytes and decode them
ourselves: that yields an INVALID_ARGUMENT with a precise message instead of gRPC's
generic internal error, and keeps the decode on our side of the accounting.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from otel_receiver.component import RequestContext, Signal
from otel_receiver.config import OtlpReceiverConfig
from otel_receiver.ingest import (
    Ingest,
    IngestError,
    IngestResult,
    InternalError,
    InvalidRequest,
    RequestTooLarge,
    Throttled,
    Unauthenticated,
    decode_protobuf,
)

log = logging.getLogger("otel_receiver.grpc")

SERVICES = {
    Signal.TRACES: "opentelemetry.proto.collector.trace.v1.TraceService",
    Signal.METRICS: "opentelemetry.proto.collector.metrics.v1.MetricsService",
    Signal.LOGS: "opentelemetry.proto.collector.logs.v1.LogsService",
}


ExportResponse = ExportTraceServiceResponse | ExportMetricsServiceResponse | ExportLogsServiceResponse


def response_message(signal: Signal, result: IngestResult) -> ExportResponse:
    resp: ExportResponse
    if signal is Signal.TRACES:
        resp = ExportTraceServiceResponse()
        if result.rejected:
            resp.partial_success.rejected_spans = result.rejected
    elif signal is Signal.METRICS:
        resp = ExportMetricsServiceResponse()
        if result.rejected:
            resp.partial_success.rejected_data_points = result.rejected
    else:
        resp = ExportLogsServiceResponse()
        if result.rejected:
            resp.partial_success.rejected_log_records = result.rejected
    if result.rejected:
        resp.partial_success.error_message = result.message
    return resp


def _retry_info_trailer(code: grpc.StatusCode, message: str, seconds: int) -> tuple[tuple[str, bytes], ...]:
    detail = AnyProto()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=Duration(seconds=seconds)))
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    return (("grpc-status-details-bin", status.SerializeToString()),)


class GrpcReceiver:
    def __init__(
        self,
        receiver_id: str,
        config: OtlpReceiverConfig,
        ingest: Ingest,
    ) -> None:
        assert config.protocols.grpc is not None
        self.receiver_id = receiver_id
        self.config = config
        self.pconfig = config.protocols.grpc
        self.ingest = ingest
        self.server: grpc.aio.Server | None = None
        self.endpoint = self.pconfig.endpoint

    def _handler(self, signal: Signal) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]:
        ingest = self.ingest

        async def export(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            try:
                ctx = RequestContext(transport="grpc", client_address=context.peer())
                ingest.authenticate(
                    lambda: {
                        k.lower(): v for k, v in context.invocation_metadata() or () if isinstance(v, str)
                    },
                    ctx,
                )
                ingest.check_admission(signal, "grpc")
                prescans = ingest.start_prescans(signal, request)
                msg = decode_protobuf(signal, request)
                if prescans:
                    await ingest.finish_prescans(prescans, request, ctx)
                result = ingest.accept(signal, msg, ctx, wire=request)
            except IngestError as e:
                if not isinstance(e, Throttled):
                    ingest.refuse(signal, "grpc", e)
                await self._abort(context, e)
                raise AssertionError("unreachable: abort raises") from None
            return response_message(signal, result).SerializeToString()

        return export

    async def _abort(self, context: grpc.aio.ServicerContext, e: IngestError) -> None:
        message = str(e)
        if isinstance(e, Throttled):
            code = grpc.StatusCode.UNAVAILABLE
            await context.abort(
                code, message, trailing_metadata=_retry_info_trailer(code, message, e.retry_after)
            )
        if isinstance(e, InvalidRequest):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
        if isinstance(e, RequestTooLarge):
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, message)
        if isinstance(e, Unauthenticated):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
        if isinstance(e, InternalError):
            await context.abort(grpc.StatusCode.INTERNAL, message)
        await context.abort(grpc.StatusCode.UNKNOWN, message)

    async def start(self) -> str:
        options: list[tuple[str, int]] = [
            ("grpc.max_receive_message_length", self.config.max_request_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ]
        if self.pconfig.max_concurrent_streams:
            options.append(("grpc.max_concurrent_streams", self.pconfig.max_concurrent_streams))
        server = grpc.aio.server(options=options)
        handlers = []
        for signal, service in SERVICES.items():
            method = grpc.unary_unary_rpc_method_handler(self._handler(signal))
            handlers.append(grpc.method_handlers_generic_handler(service, {"Export": method}))
        server.add_generic_rpc_handlers(tuple(handlers))
        tls = self.pconfig.tls
        if tls is not None:
            with open(tls.key_file, "rb") as kf, open(tls.cert_file, "rb") as cf:
                pair = [(kf.read(), cf.read())]
            ca = None
            if tls.client_ca_file:
                with open(tls.client_ca_file, "rb") as f:
                    ca = f.read()
            creds = grpc.ssl_server_credentials(
                pair, root_certificates=ca, require_client_auth=ca is not None
            )
            port = server.add_secure_port(self.pconfig.endpoint, creds)
        else:
            port = server.add_insecure_port(self.pconfig.endpoint)
        if port == 0:
            raise OSError(f"cannot listen on {self.pconfig.endpoint} (gRPC)")
        await server.start()
        self.server = server
        host = self.pconfig.endpoint.rpartition(":")[0]
        self.endpoint = f"{host}:{port}"
        return self.endpoint

    async def stop(self, grace: float) -> None:
        if self.server is not None:
            await self.server.stop(grace)
