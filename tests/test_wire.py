"""``RequestContext.wire``: the received bytes travel with a request only while they are
still its serialization. Components that scan the wire format (the normalize and
anomaly processors through ``otel_receiver.spanscan``, the pii prefilter) read them
instead of serializing again, so a stale wire would make them read data that is no
longer there, or miss data that is: a PII leak. Real processors, real ingest path."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import ClassVar

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.workload import generate_trace_requests
from otel_receiver.component import (
    Batch,
    ComponentConfig,
    ComponentSettings,
    Processor,
    RequestContext,
    Signal,
)
from otel_receiver.ingest import Ingest
from otel_receiver.pipeline import Pipeline
from otel_receiver.registry import REGISTRY
from otel_receiver.telemetry import SelfTelemetry
from semconv import attributes as sc

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
        if context.wire is not None:
            assert ExportTraceServiceRequest.FromString(context.wire) == batch, (
                f"stale wire after {self.after}"
            )
        self.seen[self.after].append(context.wire is not None)
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
    for req in rng.sample(reqs, 8):
        span = req.resource_spans[0].scope_spans[0].spans[0]
        change = rng.choice(["legacy", "event legacy", "flags", "invalid id"])
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
    # The wire reaches the scanning processors for clean requests, and is dropped where
    # the batch changes: invalid spans removed at ingest, legacy names, redactions,
    # prices (genai_cost does not keep it), flags.
    assert any(seen["received"]) and not all(seen["received"])
    assert any(seen["genai_normalize"]) and not all(seen["genai_normalize"])
    assert any(seen["pii_redaction"]) and not all(seen["pii_redaction"])
    assert not any(seen["genai_cost"]) and not any(seen["anomaly"])


def test_a_processor_that_does_not_keep_the_wire_never_sees_it() -> None:
    class Mutator(Processor):
        signals = frozenset({Signal.TRACES})
        saw: list[bytes | None] = []

        def process_traces(self, batch: ExportTraceServiceRequest, context: RequestContext) -> Batch | None:
            self.saw.append(context.wire)
            batch.resource_spans[0].scope_spans[0].spans[0].name = "changed"
            return batch

    telemetry = SelfTelemetry()
    WireCheck.seen.clear()
    mutator = Mutator(ComponentConfig(), ComponentSettings("mutator", telemetry, logging.getLogger("m")))
    pipeline = Pipeline(
        "traces", Signal.TRACES, [("mutator", mutator), ("check", WireCheck("mutator"))], [], telemetry
    )
    body = generate_trace_requests(1, 3, seed=1)[0].SerializeToString()
    pipeline.consume(ExportTraceServiceRequest.FromString(body), RequestContext(wire=body))
    assert Mutator.saw == [None]
    assert WireCheck.seen["mutator"] == [False]


def _field(number: int, payload: bytes) -> bytes:
    length, varint = len(payload), bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        varint.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([number << 3 | 2]) + bytes(varint) + payload


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
        wire = _field(
            1, first.resource_spans[0].SerializeToString() + second.resource_spans[0].SerializeToString()
        )
    else:
        scopes = [r.resource_spans[0].scope_spans[0].SerializeToString() for r in (first, second)]
        wire = _field(1, _field(2, scopes[0] + scopes[1]))
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
    context = RequestContext(wire=wire)
    pii.process(msg, context)
    assert b"jane.doe@example.com" not in msg.SerializeToString()
    assert attributes[1].value.string_value.startswith("[REDACTED:EMAIL")
    assert context.wire is None
