"""``RequestContext.wire``: the received bytes travel with a request only while they are
still its serialization. Components that scan the wire format (the normalize and
anomaly processors through ``otel_receiver.spanscan``, the pii prefilter) read them
instead of serializing again, so a stale wire would make them read data that is no
longer there, or miss data that is: a PII leak. Real processors, real ingest path."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import ClassVar

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.workload import generate_trace_requests
from otel_receiver.component import (
    Batch,
    ComponentConfig,
    ComponentSettings,
    Exporter,
    Processor,
    RequestContext,
    Signal,
    count_items,
    merge_batches,
)
from otel_receiver.ingest import Ingest
from otel_receiver.pipeline import Pipeline
from otel_receiver.queue import ExporterQueue
from otel_receiver.registry import REGISTRY
from otel_receiver.telemetry import SelfTelemetry
from semconv import attributes as sc
from tests.components import RecordingConfig
from tests.protobuf_wire import field

DEFAULT_TRACE_PROCESSORS = ("genai_normalize", "pii_redaction", "genai_cost", "anomaly")


class WireCheck(Processor):
    """Between two real processors: whenever a wire is present, it must parse into
    exactly the batch as it is now."""

    signals = frozenset({Signal.TRACES})
    keeps_wire = True  # it changes nothing
    seen: ClassVar[dict[str, list[bool]]] = {}

    def __init__(self, after: str) -> None:
        self.after = after
        self.seen.setdefault(after, [])

    def process_traces(self, batch: ExportTraceServiceRequest, context: RequestContext) -> Batch | None:
        wire = context.wire_for(batch)
        if wire is not None:
            assert ExportTraceServiceRequest.FromString(wire) == batch, f"stale wire after {self.after}"
        self.seen[self.after].append(wire is not None)
        return batch


def _pipeline(telemetry: SelfTelemetry) -> Pipeline:
    stages: list[tuple[str, Processor]] = [("check/received", WireCheck("received"))]
    for name in DEFAULT_TRACE_PROCESSORS:
        factory = REGISTRY.factory("processors", name)
        proc = factory.create(
            factory.config_model(), ComponentSettings(name, telemetry, logging.getLogger(name))
        )
        asyncio.run(proc.start())
        stages += [(name, proc), (f"check/{name}", WireCheck(name))]
    return Pipeline("traces", Signal.TRACES, stages, [], telemetry)


def _requests() -> list[ExportTraceServiceRequest]:
    """The workload, half of it with PII, plus what makes each processor change a batch:
    legacy names, a client's anomaly flags, invalid ids; and untouched ones."""
    rng = random.Random(5)
    reqs = generate_trace_requests(30, 20, seed=8, pii_fraction=0.0)
    reqs += generate_trace_requests(10, 20, seed=9, pii_fraction=0.5)
    for n, req in enumerate(rng.sample(reqs, 8)):
        span = req.resource_spans[0].scope_spans[0].spans[0]
        change = ("legacy", "event legacy", "flags", "invalid id")[n % 4]
        if change == "legacy":
            span.attributes.add(key=sc.GEN_AI_SYSTEM).value.string_value = "openai"
        elif change == "event legacy":
            span.events.add(name="e").attributes.add(key="gen_ai.prompt.0.content").value.string_value = "hi"
        elif change == "flags":
            span.attributes.add(key=sc.ANOMALY_FLAGGED).value.bool_value = True
        else:
            span.span_id = bytes(8)
    return reqs


def test_a_wire_is_always_the_batch_it_travels_with() -> None:
    telemetry = SelfTelemetry()
    WireCheck.seen.clear()
    ingest = Ingest("otlp", {Signal.TRACES: [_pipeline(telemetry)]}, telemetry)
    for req in _requests():
        body = req.SerializeToString()
        msg = ExportTraceServiceRequest.FromString(body)
        ingest.accept(Signal.TRACES, msg, RequestContext(transport="grpc"), wire=body)
    seen = WireCheck.seen
    # The received bytes reach the first processor unless ingest removed invalid spans;
    # genai_normalize then serializes the batch, and from there every processor patches
    # the bytes with the spans it changes (legacy names, redactions, prices, flags set
    # and removed) instead of dropping them: WireCheck proved each patch exact.
    assert any(seen["received"]) and not all(seen["received"])
    for stage in DEFAULT_TRACE_PROCESSORS:
        assert all(seen[stage]), stage


def test_a_processor_that_does_not_keep_the_wire_never_sees_it() -> None:
    class Mutator(Processor):
        signals = frozenset({Signal.TRACES})
        saw: list[bytes | None] = []

        def process_traces(self, batch: ExportTraceServiceRequest, context: RequestContext) -> Batch | None:
            self.saw.append(context.wire_for(batch))
            batch.resource_spans[0].scope_spans[0].spans[0].name = "changed"
            return batch

    telemetry = SelfTelemetry()
    WireCheck.seen.clear()
    mutator = Mutator(ComponentConfig(), ComponentSettings("mutator", telemetry, logging.getLogger("m")))
    pipeline = Pipeline(
        "traces", Signal.TRACES, [("mutator", mutator), ("check", WireCheck("mutator"))], [], telemetry
    )
    body = generate_trace_requests(1, 3, seed=1)[0].SerializeToString()
    msg = ExportTraceServiceRequest.FromString(body)
    context = RequestContext()
    context.set_wire(msg, body)
    pipeline.consume(msg, context)
    assert Mutator.saw == [None]
    assert WireCheck.seen["mutator"] == [False]


def test_a_wire_belongs_to_one_batch() -> None:
    """A context reused for another batch (a test's shared context, a batch the batch
    processor splits) never hands one batch's bytes to another."""
    first, second = generate_trace_requests(2, 3, seed=2)
    context = RequestContext()
    context.set_wire(first, first.SerializeToString())
    assert context.wire_for(first) == first.SerializeToString()
    assert context.wire_for(second) is None
    assert context.wire_for(None) is None
    context.drop_wire()
    assert context.wire_for(first) is None


@pytest.mark.parametrize("split", ["resource", "scope"])
def test_pii_in_a_resource_or_scope_split_over_two_fields_is_redacted(split: str) -> None:
    """Protobuf merges a singular message written twice (attribute lists concatenated),
    so indexes counted in the second field would miss the merged list's entries: the
    prefilter must not trust such bytes."""
    first, second = ExportTraceServiceRequest(), ExportTraceServiceRequest()
    for req, (key, value) in (
        (first, ("note", "nothing here")),
        (second, ("contact", "jane.doe@example.com")),
    ):
        rs = req.resource_spans.add()
        ss = rs.scope_spans.add()
        target = rs.resource.attributes if split == "resource" else ss.scope.attributes
        target.add(key=key).value.string_value = value
        ss.spans.add(name="s", trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    if split == "resource":
        wire = field(
            1, first.resource_spans[0].SerializeToString() + second.resource_spans[0].SerializeToString()
        )
    else:
        scopes = [r.resource_spans[0].scope_spans[0].SerializeToString() for r in (first, second)]
        wire = field(1, field(2, scopes[0] + scopes[1]))
    msg = ExportTraceServiceRequest.FromString(wire)
    attributes = (
        msg.resource_spans[0].resource.attributes
        if split == "resource"
        else (msg.resource_spans[0].scope_spans[0].scope.attributes)
    )
    assert [kv.key for kv in attributes] == ["note", "contact"]  # merged, as the test intends

    telemetry = SelfTelemetry()
    factory = REGISTRY.factory("processors", "pii_redaction")
    pii = factory.create(
        factory.config_model(), ComponentSettings("pii", telemetry, logging.getLogger("pii"))
    )
    asyncio.run(pii.start())
    context = RequestContext()
    context.set_wire(msg, wire)
    pii.process(msg, context)
    assert b"jane.doe@example.com" not in msg.SerializeToString()
    assert attributes[1].value.string_value.startswith("[REDACTED:EMAIL")
    # the bytes that go on are protobuf's own serialization, patched with the redaction
    after = context.wire_for(msg)
    assert after is not None and ExportTraceServiceRequest.FromString(after) == msg
    assert b"jane.doe@example.com" not in after and not context.wire_from_client


class WireCheckExporter(Exporter):
    """At the end of the pipeline: a wire handed to an exporter must be the serialization
    of the merge of the parts it comes with."""

    signals = frozenset({Signal.TRACES})
    uses_wire = True

    def __init__(self) -> None:
        self.exports: list[tuple[bool, bool]] = []  # (with a wire, from a client)
        self.spans = 0

    async def export_parts(self, parts: Sequence[Batch], context: RequestContext) -> None:
        merged = merge_batches(parts)
        wire = context.wire_for(parts)
        if wire is not None:
            assert ExportTraceServiceRequest.FromString(wire) == merged
        self.exports.append((wire is not None, context.wire_from_client))
        self.spans += count_items(merged)

    async def export(self, batch: Batch, context: RequestContext) -> None:
        await self.export_parts([batch], context)


def test_the_wire_is_let_go_when_no_exporter_reads_it() -> None:
    """The received bytes are not kept alive for exporters that never read them."""

    class Keeps(WireCheckExporter):
        uses_wire = False

    telemetry = SelfTelemetry()
    queues = [ExporterQueue(name, Keeps(), RecordingConfig(), telemetry) for name in ("a", "b")]  # type: ignore[arg-type]
    pipeline = Pipeline("traces", Signal.TRACES, [], queues, telemetry)
    body = generate_trace_requests(1, 3, seed=1)[0].SerializeToString()
    ingest = Ingest("otlp", {Signal.TRACES: [pipeline]}, telemetry)
    ingest.accept(Signal.TRACES, ExportTraceServiceRequest.FromString(body), RequestContext(), wire=body)
    for queue in queues:
        (item,) = queue._waiting
        assert item.wire is None and item.context.wire is None and item.context.wire_batch is None


@pytest.mark.parametrize("with_processors", [True, False])
def test_exporters_get_the_wire_of_their_parts(with_processors: bool) -> None:
    """Through the batch processor (merging, and splitting at send_batch_max_size) and the
    exporter queue (coalescing): the bytes concatenated are the merge's serialization."""

    telemetry = SelfTelemetry()
    stages = _pipeline(telemetry).processors if with_processors else []

    async def scenario() -> WireCheckExporter:
        batch_factory = REGISTRY.factory("processors", "batch")
        batcher = batch_factory.create(
            batch_factory.config_model(send_batch_size=50, send_batch_max_size=70, timeout=0.05),
            ComponentSettings("batch", telemetry, logging.getLogger("batch")),
        )
        await batcher.start()
        exporter = WireCheckExporter()
        cfg = RecordingConfig(
            sending_queue={"batch": {"enabled": True, "min_size": 100, "flush_timeout": 0.05}},  # type: ignore[arg-type]
        )
        queue = ExporterQueue("check", exporter, cfg, telemetry)  # type: ignore[arg-type]
        await queue.start()
        pipeline = Pipeline("traces", Signal.TRACES, [*stages, ("batch", batcher)], [queue], telemetry)
        ingest = Ingest("otlp", {Signal.TRACES: [pipeline]}, telemetry)
        sent = 0
        for req in _requests():
            body = req.SerializeToString()
            result = ingest.accept(
                Signal.TRACES, ExportTraceServiceRequest.FromString(body), RequestContext(), wire=body
            )
            sent += result.accepted
            await asyncio.sleep(0)
        await batcher.shutdown()
        await queue.drain(10)
        assert exporter.spans == sent
        return exporter

    exporter = asyncio.run(scenario())
    with_wire = [w for w, _ in exporter.exports]
    assert any(with_wire), exporter.exports
    if with_processors:  # each processor patches the bytes: every part keeps some
        assert all(with_wire), exporter.exports
    else:  # the clients' bytes, concatenated
        assert all(from_client for w, from_client in exporter.exports if w)


def test_logs_and_metrics_changed_by_a_wire_keeping_processor_lose_the_wire() -> None:
    """Processors that keep the wire for traces must still drop it for the signals where
    they do not track their changes (genai_normalize renames log and metric attributes)."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    logs = ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add()
    record.attributes.add(key=sc.GEN_AI_SYSTEM).value.string_value = "openai"
    metrics = ExportMetricsServiceRequest()
    metric = metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="m")
    metric.gauge.data_points.add().attributes.add(key=sc.GEN_AI_SYSTEM).value.string_value = "openai"
    telemetry = SelfTelemetry()
    for name in DEFAULT_TRACE_PROCESSORS:
        factory = REGISTRY.factory("processors", name)
        proc = factory.create(
            factory.config_model(), ComponentSettings(name, telemetry, logging.getLogger(name))
        )
        for batch in (logs, metrics):
            if not proc.keeps_wire or not any(s.value in type(batch).__name__.lower() for s in proc.signals):
                continue
            body = batch.SerializeToString()
            context = RequestContext()
            context.set_wire(batch, body)
            proc.process(batch, context)
            wire = context.wire_for(batch)
            assert wire is None or type(batch).FromString(wire) == batch, (name, type(batch).__name__)
