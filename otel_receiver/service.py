"""The running receiver: builds components from a Config, serves, and shuts down cleanly.

Start order is exporters -> queues -> processors -> receivers, so nothing is accepted
before it can be delivered; shutdown is the reverse: stop intake (health turns 503,
new requests get a retryable status), flush processors (batch), drain every queue,
then shut exporters down. A clean shutdown loses nothing that was acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import signal as signals
from collections.abc import Sequence
from typing import Any

from otel_receiver.auth import Authenticator
from otel_receiver.component import (
    Batch,
    ComponentSettings,
    ComponentStartError,
    Exporter,
    Processor,
    RequestContext,
    Signal,
)
from otel_receiver.config import Config
from otel_receiver.grpc_receiver import GrpcReceiver
from otel_receiver.http_receiver import HttpReceiver
from otel_receiver.ingest import Ingest
from otel_receiver.memory import pace_protobuf_malloc_trim
from otel_receiver.pipeline import Pipeline, ProcessorError, fan_out
from otel_receiver.queue import ExporterQueue
from otel_receiver.registry import REGISTRY, Registry
from otel_receiver.telemetry import SelfTelemetry

log = logging.getLogger("otel_receiver")


class Service:
    def __init__(
        self, config: Config, telemetry: SelfTelemetry | None = None, registry: Registry = REGISTRY
    ) -> None:
        self.config = config
        self.telemetry = telemetry or SelfTelemetry()
        self.registry = registry
        self.exporters: dict[str, Exporter] = {}
        self.queues: dict[str, ExporterQueue] = {}
        self.pipelines: dict[str, Pipeline] = {}
        self.ingests: dict[str, Ingest] = {}
        self.grpc: dict[str, GrpcReceiver] = {}
        self.http: dict[str, HttpReceiver] = {}
        self._processors: list[tuple[str, Processor]] = []  # in start order
        self._stopped = asyncio.Event()
        self._started = False

    def _settings(self, component_id: str) -> ComponentSettings:
        return ComponentSettings(
            component_id=component_id,
            telemetry=self.telemetry,
            logger=logging.getLogger(f"otel_receiver.{component_id}"),
            host=self,
            config_dir=self.config.config_dir,
        )

    # --- Host -------------------------------------------------------------------------
    def submit(self, signal: Signal, batch: Batch, context: RequestContext) -> bool:
        """Feed a component-generated batch into every pipeline of ``signal``."""
        targets = [p for p in self.pipelines.values() if p.signal is signal]
        if not targets or not all(p.has_room() for p in targets):
            return False
        try:
            fan_out(targets, batch, context)
        except ProcessorError:
            return False
        return True

    def exporter(self, component_id: str) -> Exporter:
        exporter = self.exporters.get(component_id)
        if exporter is None:
            running = ", ".join(sorted(self.exporters)) or "none"
            raise KeyError(
                f"exporter {component_id!r} is not used by any pipeline (exporters running: {running})"
            )
        return exporter

    # --- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        try:
            pace_protobuf_malloc_trim()
        except ValueError as e:  # the interval's variable, named in the message
            raise ComponentStartError(str(e)) from None
        cfg = self.config
        used_exporters = {e for p in cfg.pipelines.values() for e in p.exporters}
        for eid in used_exporters:
            entry = cfg.exporters[eid]
            factory = self.registry.factory("exporters", entry.type_name)
            exporter = factory.create(entry.config, self._settings(eid))
            await exporter.start()
            self.exporters[eid] = exporter
            queue = ExporterQueue(eid, exporter, exporter.config, self.telemetry)
            await queue.start()
            self.queues[eid] = queue

        by_receiver: dict[str, dict[Signal, list[Pipeline]]] = {}
        for pid, pc in cfg.pipelines.items():
            procs: list[tuple[str, Processor]] = []
            for proc_id in pc.processors:
                entry = cfg.processors[proc_id]
                factory = self.registry.factory("processors", entry.type_name)
                proc = factory.create(entry.config, self._settings(proc_id))
                procs.append((proc_id, proc))
            pipeline = Pipeline(pid, pc.signal, procs, [self.queues[e] for e in pc.exporters], self.telemetry)
            self.pipelines[pid] = pipeline
            for rid in pc.receivers:
                by_receiver.setdefault(rid, {}).setdefault(pc.signal, []).append(pipeline)
        for pipeline in self.pipelines.values():
            for proc_id, proc in pipeline.processors:
                await proc.start()
                self._processors.append((proc_id, proc))

        for rid, pipes in by_receiver.items():
            rc = cfg.receivers[rid]
            auth = Authenticator(rc.auth) if rc.auth else None
            ingest = Ingest(rid, pipes, self.telemetry, auth, rc.trust_audit_attributes)
            self.ingests[rid] = ingest
            if rc.protocols.grpc is not None:
                g = GrpcReceiver(rid, rc, ingest)
                await g.start()
                self.grpc[rid] = g
            if rc.protocols.http is not None:
                h = HttpReceiver(rid, rc, ingest)
                await h.start()
                self.http[rid] = h
        self._started = True

    def banner(self) -> list[str]:
        lines = []
        for rid, g in self.grpc.items():
            lines.append(f"{rid}: OTLP/gRPC listening on {g.endpoint}")
        for rid, h in self.http.items():
            lines.append(f"{rid}: OTLP/HTTP listening on {h.url} (POST /v1/traces|metrics|logs, GET /health)")
        for pid, p in self.pipelines.items():
            procs = ", ".join(name for name, _ in p.processors) or "none"
            exps = ", ".join(q.exporter_id for q in p.queues)
            lines.append(f"pipeline {pid}: processors [{procs}] -> exporters [{exps}]")
        for eid, e in self.exporters.items():
            lines.append(f"exporter {eid}: {e.describe()}")
        return lines

    async def shutdown(self) -> None:
        if not self._started:
            return
        self._started = False
        for ingest in self.ingests.values():
            ingest.draining = True  # new requests: 503 / UNAVAILABLE, health: 503
        grace = min(5.0, self.config.service.shutdown_timeout)
        await asyncio.gather(*(g.stop(grace) for g in self.grpc.values()))
        # The HTTP server stays up while queues drain: /health answers 503 (load balancers
        # take the instance out) and exports get 503 + Retry-After instead of a reset.
        for proc_id, proc in self._processors:
            try:
                await proc.shutdown()
            except Exception as e:
                log.error("processor %s failed to shut down: %s", proc_id, type(e).__name__)
        await asyncio.gather(*(q.drain(self.config.service.shutdown_timeout) for q in self.queues.values()))
        for eid, exporter in self.exporters.items():
            try:
                await exporter.shutdown()
            except Exception as e:
                log.error("exporter %s failed to shut down: %s", eid, e)
        for h in self.http.values():
            await h.stop()
        self._stopped.set()

    async def run_until_signalled(self, on_started: Any = None) -> None:
        """Serve until SIGTERM/SIGINT, then shut down cleanly."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signals.SIGTERM, signals.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        if on_started is not None:
            on_started(self)
        await stop.wait()
        log.info("shutting down: draining queues")
        await self.shutdown()

    @property
    def grpc_endpoints(self) -> Sequence[str]:
        return [g.endpoint for g in self.grpc.values()]

    @property
    def http_urls(self) -> Sequence[str]:
        return [h.url for h in self.http.values()]
