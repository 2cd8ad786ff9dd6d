"""Objects that lag behind the wire (RequestContext.objects_lag): genai_cost's C pass
appends the costs to a request's bytes alone; every component that reads the objects
must still see them, and components that read only the bytes must not pay a parse."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from bench.workload import generate_trace_requests
from exporters.debug.config import DebugExporterConfig
from exporters.debug.exporter import DebugExporter
from otel_receiver.component import (
    Batch,
    ComponentSettings,
    Exporter,
    ExporterConfig,
    Processor,
    RequestContext,
    Signal,
)
from otel_receiver.pipeline import Pipeline
from otel_receiver.queue import ExporterQueue
from otel_receiver.telemetry import SelfTelemetry
from processors.genai_cost import GenAICostProcessor, factory, fastpath
from semconv import attributes as a

pytestmark = pytest.mark.skipif(not fastpath.available(), reason="genai_cost's C pass is not built")


def _settings(name: str, telemetry: SelfTelemetry | None = None) -> ComponentSettings:
    return ComponentSettings(name, telemetry or SelfTelemetry(), logging.getLogger(f"test.{name}"))


def _cost_processor() -> GenAICostProcessor:
    proc = factory.create(factory.config_model(), _settings("genai_cost"))
    assert isinstance(proc, GenAICostProcessor)
    return proc


def _request(seed: int = 3) -> tuple[ExportTraceServiceRequest, bytes]:
    (req,) = generate_trace_requests(1, 20, seed=seed)
    body = req.SerializeToString()
    return ExportTraceServiceRequest.FromString(body), body


def _costs(batch: ExportTraceServiceRequest) -> list[float]:
    return [
        kv.value.double_value
        for rs in batch.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
        for kv in span.attributes
        if kv.key == a.GEN_AI_USAGE_COST
    ]


def _count_syncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = RequestContext.sync_objects

    def counted(self: RequestContext) -> None:
        if self.objects_lag:
            calls.append(1)
        original(self)

    monkeypatch.setattr(RequestContext, "sync_objects", counted)
    return calls


class _ObjectReader(Processor):
    """Reads the costs from the objects, as any processor not declaring otherwise may."""

    signals = frozenset({Signal.TRACES})

    def __init__(self, keeps_wire: bool) -> None:
        super().__init__(factory.config_model(), _settings("reader"))
        self.keeps = keeps_wire
        self.seen: list[list[float]] = []

    def process_traces(self, batch: ExportTraceServiceRequest, context: RequestContext) -> Batch | None:
        self.seen.append(_costs(batch))
        return batch


class _KeepsWireReader(_ObjectReader):
    keeps_wire = True


class _WireOnlyExporter(Exporter):
    """Reads the bytes it is given, and the objects only when there are none."""

    signals = frozenset(Signal)
    uses_wire = True
    suspends = False
    accepts_lagging_objects = True
    FOUND: ClassVar[list[tuple[str, list[float]]]] = []

    async def export_parts(self, parts: Sequence[Batch], context: RequestContext) -> None:
        pieces = context.wire_pieces_for(parts)
        for part in parts:
            assert isinstance(part, ExportTraceServiceRequest)
        if pieces is not None:
            merged = ExportTraceServiceRequest.FromString(b"".join(pieces))
            self.FOUND.append(("wire", _costs(merged)))
        else:
            costs = [c for part in parts for c in _costs(part)]  # type: ignore[arg-type]
            self.FOUND.append(("objects", costs))

    async def export(self, batch: Batch, context: RequestContext) -> None:
        raise AssertionError("export_parts is overridden")


def _queue(
    exporter: Exporter, batch: dict[str, Any] | None = None, storage: str | None = None
) -> ExporterQueue:
    queue_cfg: dict[str, Any] = {"num_consumers": 1, "batch": batch or {}}
    if storage is not None:
        queue_cfg["storage"] = storage
    cfg = ExporterConfig(sending_queue=queue_cfg)  # type: ignore[arg-type]
    return ExporterQueue("x", exporter, cfg, SelfTelemetry())


def _priced_and_exported(queue: ExporterQueue) -> None:
    """One request of the workload through genai_cost's C pass into ``queue``, exported."""
    pipeline = Pipeline(
        "traces", Signal.TRACES, [("genai_cost", _cost_processor())], [queue], SelfTelemetry()
    )
    batch, body = _request()
    context = RequestContext()
    context.set_wire(batch, body, from_client=True)

    async def run() -> None:
        pipeline.consume(batch, context)
        await queue.start()
        await queue.drain(5)

    asyncio.run(run())


def test_the_c_pass_leaves_the_objects_lagging_and_a_sync_brings_them_up() -> None:
    batch, body = _request()
    context = RequestContext()
    context.set_wire(batch, body, from_client=True)
    _cost_processor().process(batch, context)
    assert context.objects_lag
    assert _costs(batch) == []  # appended to the bytes alone
    wire = context.wire_for(batch)
    assert wire is not None and len(_costs(ExportTraceServiceRequest.FromString(wire))) > 5
    context.sync_objects()
    assert not context.objects_lag
    assert ExportTraceServiceRequest.FromString(wire) == batch


@pytest.mark.parametrize("keeps_wire", [False, True])
def test_a_processor_that_reads_objects_sees_the_costs(keeps_wire: bool) -> None:
    reader = _KeepsWireReader(True) if keeps_wire else _ObjectReader(False)
    pipeline = Pipeline(
        "traces", Signal.TRACES, [("genai_cost", _cost_processor()), ("r", reader)], [], SelfTelemetry()
    )
    batch, body = _request()
    context = RequestContext()
    context.set_wire(batch, body, from_client=True)
    pipeline.consume(batch, context)
    assert len(reader.seen[0]) > 5


def test_a_counting_exporter_gets_lagging_objects_without_a_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    syncs = _count_syncs(monkeypatch)
    debug = DebugExporter(DebugExporterConfig(verbosity="basic"), _settings("debug"))
    queue = _queue(debug)
    _priced_and_exported(queue)
    assert syncs == []
    assert debug.items[Signal.TRACES] == 20


def test_a_detailed_debug_exporter_gets_synced_objects() -> None:
    debug = DebugExporter(DebugExporterConfig(verbosity="detailed"), _settings("debug"))
    queue = _queue(debug)
    assert not queue.accepts_lagging_objects
    pipeline = Pipeline(
        "traces", Signal.TRACES, [("genai_cost", _cost_processor())], [queue], SelfTelemetry()
    )
    batch, body = _request()
    context = RequestContext()
    context.set_wire(batch, body, from_client=True)
    pipeline.consume(batch, context)
    assert not context.objects_lag
    assert len(_costs(batch)) > 5


def test_a_wire_reading_exporter_gets_the_costs_from_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    syncs = _count_syncs(monkeypatch)
    _WireOnlyExporter.FOUND.clear()
    queue = _queue(_WireOnlyExporter(ExporterConfig(), _settings("wire")))
    _priced_and_exported(queue)
    assert syncs == []
    ((how, costs),) = _WireOnlyExporter.FOUND
    assert how == "wire" and len(costs) > 5


def test_coalescing_with_a_part_without_bytes_syncs_the_lagging_parts() -> None:
    """An OTLP/JSON request has no bytes: merged with a lagging one, the exporter reads
    the objects of both, so the lagging part must be brought up first."""
    _WireOnlyExporter.FOUND.clear()
    queue = _queue(
        _WireOnlyExporter(ExporterConfig(), _settings("wire")),
        batch={"enabled": True, "min_size": 40, "flush_timeout": 0.5},
    )
    pipeline = Pipeline(
        "traces", Signal.TRACES, [("genai_cost", _cost_processor())], [queue], SelfTelemetry()
    )
    lagging, body = _request(seed=3)
    context = RequestContext()
    context.set_wire(lagging, body, from_client=True)
    without_bytes, _ = _request(seed=4)

    async def run() -> None:
        pipeline.consume(lagging, context)
        assert context.objects_lag  # queued as it is: the exporter reads bytes
        pipeline.consume(without_bytes, RequestContext())
        await queue.start()
        await queue.drain(5)

    asyncio.run(run())
    ((how, costs),) = _WireOnlyExporter.FOUND
    assert how == "objects"
    assert len(costs) == 16  # 8 + 8: the lagging part synced, the other priced by its objects


def test_a_persistent_queue_without_bytes_stores_synced_objects(tmp_path: Any) -> None:
    debug = DebugExporter(DebugExporterConfig(verbosity="basic"), _settings("debug"))
    queue = _queue(debug, storage=str(tmp_path / "q"))
    # it would serialize the objects into its log: they must be synced before
    assert not queue.accepts_lagging_objects


def test_replacing_or_dropping_the_wire_syncs_first_and_splicing_refuses() -> None:
    for change in ("set", "drop"):
        batch, body = _request()
        context = RequestContext()
        context.set_wire(batch, body, from_client=True)
        _cost_processor().process(batch, context)
        assert context.objects_lag
        if change == "set":
            context.set_wire(batch, b"")
        else:
            context.drop_wire()
        assert not context.objects_lag and len(_costs(batch)) > 5
    batch, body = _request()
    context = RequestContext()
    context.set_wire(batch, body, from_client=True)
    _cost_processor().process(batch, context)
    with pytest.raises(RuntimeError, match="lag"):
        context.splice_wire(batch, [(0, 0, 0, Span().SerializeToString(), False)])
    with pytest.raises(ValueError, match="no wire"):
        RequestContext().advance_wire(batch, b"")
