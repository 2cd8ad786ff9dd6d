"""OTLP/HTTP on aiohttp: ``POST /v1/traces|metrics|logs`` (protobuf or JSON), ``GET /health``.

aiohttp because it is the most used, well-kept asyncio HTTP server, runs on the same
event loop as grpc.aio (one process, one loop, no thread hand-offs for Python work), and
lets us turn off its automatic request decompression so gzip bombs are bounded by our
own code.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from aiohttp import web
from google.rpc import status_pb2

from otel_receiver.component import REQUEST_TYPES, RequestContext, Signal
from otel_receiver.config import OtlpReceiverConfig, split_host_port
from otel_receiver.grpc_receiver import response_message
from otel_receiver.ingest import (
    Ingest,
    IngestError,
    InternalError,
    InvalidRequest,
    RequestTooLarge,
    Throttled,
    Unauthenticated,
    decode_protobuf,
    gunzip_bounded,
)

log = logging.getLogger("otel_receiver.http")

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
PATHS = {"/v1/traces": Signal.TRACES, "/v1/metrics": Signal.METRICS, "/v1/logs": Signal.LOGS}
_GRPC_CODES = {400: 3, 401: 16, 413: 8, 415: 3, 500: 13, 503: 14}


def _status_body(http_status: int, message: str, json_body: bool) -> bytes:
    status = status_pb2.Status(code=_GRPC_CODES.get(http_status, 2), message=message)
    if json_body:
        from google.protobuf import json_format

        return json_format.MessageToJson(status, indent=None).encode()
    return status.SerializeToString()


class HttpReceiver:
    def __init__(
        self,
        receiver_id: str,
        config: OtlpReceiverConfig,
        ingest: Ingest,
    ) -> None:
        assert config.protocols.http is not None
        self.receiver_id = receiver_id
        self.config = config
        self.pconfig = config.protocols.http
        self.ingest = ingest
        self.runner: web.AppRunner | None = None
        self.endpoint = self.pconfig.endpoint
        self.url = ""

    def _app(self) -> web.Application:
        # The compressed body is capped here; the decompressed size by gunzip_bounded.
        app = web.Application(client_max_size=self.config.max_request_bytes)
        for path, signal in PATHS.items():
            app.router.add_post(path, self._handler(signal))
        app.router.add_get("/health", self._health)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        if self.ingest.draining:
            return web.json_response({"status": "draining"}, status=503)
        return web.json_response({"status": "ready"})

    def _handler(self, signal: Signal):  # type: ignore[no-untyped-def]
        ingest = self.ingest
        limit = self.config.max_request_bytes

        async def handle(request: web.Request) -> web.Response:
            ctype = request.content_type.lower()
            if ctype not in (PROTOBUF, JSON):
                ingest.refuse(signal, "http", InvalidRequest("unsupported media type"))
                return self._error(
                    415, f"unsupported Content-Type {ctype!r}; use {PROTOBUF} or {JSON}", False
                )
            as_json = ctype == JSON
            try:
                encoding = request.headers.get("Content-Encoding", "").strip().lower()
                if encoding not in ("", "identity", "gzip"):
                    return self._error(415, f"unsupported Content-Encoding {encoding!r}; use gzip", as_json)
                ctx = RequestContext(transport="http", client_address=request.remote)
                ingest.authenticate(lambda: {k.lower(): v for k, v in request.headers.items()}, ctx)
                ingest.check_admission(signal, "http")
                try:
                    body = await request.read()
                except web.HTTPRequestEntityTooLarge:
                    raise RequestTooLarge(f"request body exceeds the limit of {limit} bytes") from None
                if encoding == "gzip":
                    body = gunzip_bounded(body, limit)
                if as_json:
                    from otel_receiver import otlp_json

                    try:
                        msg = otlp_json.decode(REQUEST_TYPES[signal], body)
                    except otlp_json.OtlpJsonError as e:
                        raise InvalidRequest(f"invalid OTLP JSON: {e}") from None
                    wire: bytes | None = None
                else:
                    prescans = ingest.start_prescans(signal, body)
                    msg = decode_protobuf(signal, body)
                    if prescans:
                        await ingest.finish_prescans(prescans, body, ctx)
                    wire = body
                result = ingest.accept(signal, msg, ctx, wire=wire)
            except IngestError as e:
                if not isinstance(e, Throttled):
                    ingest.refuse(signal, "http", e)
                return self._ingest_error(e, as_json)
            response = response_message(signal, result)
            if as_json:
                from otel_receiver import otlp_json

                return web.Response(body=otlp_json.encode(response), content_type=JSON)
            return web.Response(body=response.SerializeToString(), content_type=PROTOBUF)

        return handle

    def _ingest_error(self, e: IngestError, as_json: bool) -> web.Response:
        if isinstance(e, Throttled):
            resp = self._error(503, str(e), as_json)
            resp.headers["Retry-After"] = str(e.retry_after)
            return resp
        if isinstance(e, RequestTooLarge):
            return self._error(413, str(e), as_json)
        if isinstance(e, Unauthenticated):
            resp = self._error(401, str(e), as_json)
            resp.headers["WWW-Authenticate"] = "Bearer"
            return resp
        if isinstance(e, InternalError):
            return self._error(500, str(e), as_json)
        return self._error(400, str(e), as_json)

    def _error(self, status: int, message: str, as_json: bool) -> web.Response:
        return web.Response(
            status=status,
            body=_status_body(status, message, as_json),
            content_type=JSON if as_json else PROTOBUF,
        )

    async def start(self) -> str:
        # auto_decompress=False: gzip is inflated by gunzip_bounded with a hard limit.
        runner = web.AppRunner(self._app(), auto_decompress=False, access_log=None)
        await runner.setup()
        host, port = split_host_port(self.pconfig.endpoint)
        ssl_ctx = None
        tls = self.pconfig.tls
        if tls is not None:
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.load_cert_chain(tls.cert_file, tls.key_file)
            if tls.client_ca_file:
                ssl_ctx.load_verify_locations(tls.client_ca_file)
                ssl_ctx.verify_mode = ssl.CERT_REQUIRED
        site = web.TCPSite(runner, host, port, ssl_context=ssl_ctx, reuse_address=True)
        await site.start()
        self.runner = runner
        server: Any = site._server
        bound_port = port
        if server is not None and getattr(server, "sockets", None):
            bound_port = server.sockets[0].getsockname()[1]
        self.endpoint = f"{host}:{bound_port}"
        self.url = f"{'https' if tls else 'http'}://{self.endpoint}"
        return self.url

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
