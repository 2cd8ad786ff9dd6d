"""Real components used only by tests: an exporter that records what it receives and can be
made slow or failing on demand. Registered programmatically (``REGISTRY.register``), the
same way an embedding application would add its own component."""

from __future__ import annotations

import asyncio
import threading
from typing import ClassVar

from pydantic import Field

from otel_receiver.component import (
    Batch,
    ComponentSettings,
    Exporter,
    ExporterConfig,
    Factory,
    RequestContext,
    RetryableExportError,
    Signal,
    count_items,
)
from otel_receiver.registry import REGISTRY


class RecordingConfig(ExporterConfig):
    name: str = Field(default="default", description="key of the RECORDS bucket to append to")
    delay: float = Field(default=0.0, ge=0, description="seconds each export takes")


class RecordingExporter(Exporter):
    """Keeps serialized copies of every exported batch in ``RECORDS[name]``."""

    signals = frozenset(Signal)
    RECORDS: ClassVar[dict[str, list[tuple[Signal, bytes, RequestContext]]]] = {}
    FAILING: ClassVar[dict[str, bool]] = {}
    LOCK: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, config: RecordingConfig, settings: ComponentSettings) -> None:
        super().__init__(config, settings)
        self.rc = config

    async def export(self, batch: Batch, context: RequestContext) -> None:
        if self.rc.delay:
            await asyncio.sleep(self.rc.delay)
        if self.FAILING.get(self.rc.name):
            raise RetryableExportError("backend down (test switch)")
        from otel_receiver.component import signal_of

        with self.LOCK:
            self.RECORDS.setdefault(self.rc.name, []).append(
                (signal_of(batch), batch.SerializeToString(), context)
            )

    @classmethod
    def items(cls, name: str) -> int:
        from otel_receiver.component import REQUEST_TYPES

        total = 0
        for sig, raw, _ in cls.RECORDS.get(name, []):
            msg = REQUEST_TYPES[sig]()
            msg.ParseFromString(raw)
            total += count_items(msg)
        return total


def register() -> None:
    REGISTRY.register("exporters", Factory("recording", RecordingConfig, RecordingExporter))


register()
