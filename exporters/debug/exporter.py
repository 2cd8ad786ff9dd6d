"""The debug exporter: what arrives at the end of a pipeline, for people.

``basic`` only counts (one line per batch), which makes it the raw-receive baseline
of the benchmark: its per-batch cost is one ``count_items`` and, at most, one write.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from exporters.debug import format as debug_format
from exporters.debug.config import DebugExporterConfig
from otel_receiver.component import (
    Batch,
    ComponentSettings,
    Exporter,
    RequestContext,
    Signal,
    count_items,
    merge_parts,
    signal_of,
)

_ITEM_NAMES = {Signal.TRACES: "spans", Signal.METRICS: "data points", Signal.LOGS: "log records"}
_RESOURCE_NAMES = {
    Signal.TRACES: "resource spans",
    Signal.METRICS: "resource metrics",
    Signal.LOGS: "resource logs",
}
_RESOURCE_FIELDS = {
    Signal.TRACES: "resource_spans",
    Signal.METRICS: "resource_metrics",
    Signal.LOGS: "resource_logs",
}


class DebugExporter(Exporter):
    signals = frozenset(Signal)
    suspends = False  # writes synchronously
    exports_now = True

    def __init__(self, config: DebugExporterConfig, settings: ComponentSettings) -> None:
        super().__init__(config, settings)
        self.config: DebugExporterConfig = config
        # basic prints counts only: attributes still in the wire alone do not matter
        self.accepts_lagging_objects = config.verbosity == "basic"
        self._lock = threading.Lock()
        self._stream: TextIO | None = None
        self._owns_stream = False
        self._window_start = 0.0
        self._written_in_window = 0
        self._sampled_out = 0
        self.items: dict[Signal, int] = dict.fromkeys(Signal, 0)
        self.batches: dict[Signal, int] = dict.fromkeys(Signal, 0)

    def _output_path(self) -> Path:
        # Relative to the working directory, as in the Collector.
        return Path(self.config.output).expanduser().absolute()

    async def start(self) -> None:
        output = self.config.output
        if output == "stderr":
            self._stream = sys.stderr
        elif output == "stdout":
            self._stream = sys.stdout
        else:
            path = self._output_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = path.open("a", encoding="utf-8")
            self._owns_stream = True

    def describe(self) -> str:
        where = self.config.output
        if where not in ("stderr", "stdout"):
            where = str(self._output_path())
        return f"{self.settings.component_id}: {self.config.verbosity} to {where}"

    def _sampled(self) -> bool:
        """The Collector's sampling: the first ``sampling_initial`` batches of each second,
        then every ``sampling_thereafter``-th."""
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start = now
            self._written_in_window = 0
        self._written_in_window += 1
        if self._written_in_window <= self.config.sampling_initial:
            return True
        excess = self._written_in_window - self.config.sampling_initial
        return excess % self.config.sampling_thereafter == 0

    def export_now(self, parts: Sequence[Batch], context: RequestContext) -> None:
        self._export(merge_parts(parts, context))

    async def export(self, batch: Batch, context: RequestContext) -> None:
        self._export(batch)

    def _export(self, batch: Batch) -> None:
        signal = signal_of(batch)
        n = count_items(batch)
        with self._lock:
            self.items[signal] += n
            self.batches[signal] += 1
            if not self._sampled():
                self._sampled_out += 1
                return
        resources = len(getattr(batch, _RESOURCE_FIELDS[signal]))
        header = (
            f"{self.settings.component_id} {signal.value}: "
            f"{resources} {_RESOURCE_NAMES[signal]}, {n} {_ITEM_NAMES[signal]}"
        )
        verbosity = self.config.verbosity
        if verbosity == "basic":
            text = header + "\n"
        elif verbosity == "normal":
            text = f"{header}\n{debug_format.normal(batch)}\n"
        else:
            text = f"{header}\n{debug_format.detailed(batch)}\n"
        self._write(text)

    def _write(self, text: str) -> None:
        stream = self._stream
        if stream is None:
            return
        with self._lock:
            stream.write(text)
            stream.flush()

    async def shutdown(self) -> None:
        with self._lock:
            stream, self._stream = self._stream, None
            if stream is not None:
                stream.flush()
                if self._owns_stream:
                    stream.close()


def create(config: DebugExporterConfig, settings: ComponentSettings) -> DebugExporter:
    return DebugExporter(config, settings)
