"""Shared fixtures: a real receiver on loopback, started from a YAML string."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from otel_receiver.config import parse_config
from otel_receiver.service import Service


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RunningReceiver:
    service: Service
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    stopped: bool = False

    @property
    def grpc_endpoint(self) -> str:
        return self.service.grpc_endpoints[0]

    @property
    def http_url(self) -> str:
        return self.service.http_urls[0]

    @property
    def telemetry(self) -> Any:
        return self.service.telemetry

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the receiver's event loop and return its result."""

        async def wrapper() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(30)

    def stop(self, timeout: float = 60) -> None:
        if self.stopped:
            return
        self.stopped = True
        asyncio.run_coroutine_threadsafe(self.service.shutdown(), self.loop).result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)


def start_receiver(yaml_text: str, config_dir: str = ".") -> RunningReceiver:
    """Start a Service in a thread with its own event loop; ``127.0.0.1:0`` ports are picked free."""
    config = parse_config(yaml_text, "<test>", config_dir)
    loop = asyncio.new_event_loop()
    service = Service(config)
    ready = threading.Event()
    error: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def boot() -> None:
            try:
                await service.start()
            except BaseException as e:
                error.append(e)
            finally:
                ready.set()

        loop.run_until_complete(boot())
        if not error:
            loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    thread = threading.Thread(target=run, name="receiver", daemon=True)
    thread.start()
    ready.wait(60)
    if error:
        thread.join(10)
        raise error[0]
    return RunningReceiver(service, loop, thread)


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., RunningReceiver]]:
    started: list[RunningReceiver] = []

    def factory(yaml_text: str, config_dir: str = ".") -> RunningReceiver:
        r = start_receiver(yaml_text, config_dir)
        started.append(r)
        return r

    yield factory
    for r in started:
        r.stop()
