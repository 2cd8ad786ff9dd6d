"""The /metrics scrape endpoint (aiohttp, like the receiver's HTTP server)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web
from prometheus_client.exposition import gzip_accepted

# (Accept header, gzip wanted) -> (body, Content-Type, gzipped)
Renderer = Callable[[str, bool], tuple[bytes, str, bool]]

_INDEX = b'<html><body><a href="/metrics">/metrics</a></body></html>'


class ScrapeServer:
    def __init__(self, host: str, port: int, render: Renderer, logger: logging.Logger) -> None:
        self._host = host
        self._port = port
        self._render = render
        self._logger = logger
        self._runner: web.AppRunner | None = None
        self.port = port

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}/metrics"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/", self._index)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port, reuse_address=True)
        try:
            await site.start()
        except OSError as err:
            await runner.cleanup()
            raise OSError(f"prometheus exporter cannot listen on {self._host}:{self._port}: {err}") from err
        self._runner = runner
        addresses = runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        self._logger.info("prometheus exporter serving %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(body=_INDEX, content_type="text/html")

    async def _metrics(self, request: web.Request) -> web.Response:
        accept = request.headers.get("Accept", "")
        want_gzip = gzip_accepted(request.headers.get("Accept-Encoding", ""))
        # Rendering walks every series: keep it off the event loop the receiver runs on.
        body, content_type, gzipped = await asyncio.to_thread(self._render, accept, want_gzip)
        headers = {"Content-Type": content_type}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)
