"""genai_cost prices from the C scan's values when the request's bytes travel with it,
and through protobuf's objects when they do not: both must give the same spans, the same
self-metrics and, on the scanned path, bytes that are the priced request."""

from __future__ import annotations

import logging
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from bench.workload import generate_trace_requests
from otel_receiver.component import ComponentSettings, RequestContext
from otel_receiver.telemetry import SelfTelemetry
from processors.genai_cost import GenAICostProcessor, factory, fastpath
from processors.genai_cost import processor as cost_module
from semconv import attributes as a

MODELS = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-pro", "o3", "no-such-model", "", "GPT-4O"]
PROVIDERS = ["openai", "anthropic", "gcp.gemini", "aws.bedrock", "self-hosted", ""]
TOKEN_KEYS = [
    a.GEN_AI_USAGE_INPUT_TOKENS,
    a.GEN_AI_USAGE_OUTPUT_TOKENS,
    a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    a.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    a.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
]
WRITTEN_KEYS = [
    a.GEN_AI_USAGE_COST,
    a.GEN_AI_COST_PRICING,
    a.GEN_AI_COST_REPORTED,
    a.GEN_AI_COST_UNPRICED,
    a.GEN_AI_COST_ERROR,
    a.GEN_AI_COST_MISMATCH,
    a.GEN_AI_USAGE_COST_INPUT,
]
LEGACY_KEYS = ["gen_ai.system", "gen_ai.usage.prompt_tokens", "llm.token_count.completion", "llm.model_name"]


def _value(draw: st.DrawFn, key: str) -> AnyValue:
    v = AnyValue()
    choice = draw(st.sampled_from(["int", "str", "double", "bool", "none", "array", "typical"]))
    if choice == "typical":
        choice = "int" if key in TOKEN_KEYS or "token" in key else "str"
    if choice == "int":
        v.int_value = draw(st.sampled_from([0, 1, 7, 1200, 250_000, -3, 10**12]))
    elif choice == "str":
        v.string_value = draw(
            st.sampled_from([*MODELS, *PROVIDERS, "chat", "invoke_agent", "42", " 7 ", "x"])
        )
    elif choice == "double":
        v.double_value = draw(st.sampled_from([0.0, 12.0, 12.5, -1.0, 1e300, float("nan"), 0.0031]))
    elif choice == "bool":
        v.bool_value = draw(st.booleans())
    elif choice == "array":
        v.array_value.values.add().int_value = 3
    return v


@st.composite
def spans(draw: st.DrawFn) -> Span:
    span = Span(name="call", kind=draw(st.sampled_from([0, 1, 3])))
    span.start_time_unix_nano = draw(
        st.sampled_from([0, 1_700_000_000_000_000_000, 1_790_000_000_000_000_000])
    )
    keys = [a.GEN_AI_OPERATION_NAME, a.GEN_AI_PROVIDER_NAME, a.GEN_AI_REQUEST_MODEL, a.GEN_AI_RESPONSE_MODEL]
    keys += [*TOKEN_KEYS, a.OPENAI_RESPONSE_SERVICE_TIER, "other.key"]
    if draw(st.integers(0, 4)) == 0:
        keys += WRITTEN_KEYS
    if draw(st.integers(0, 4)) == 0:
        keys += LEGACY_KEYS
    for key in draw(st.lists(st.sampled_from(keys), max_size=12)):
        if key in (a.GEN_AI_REQUEST_MODEL, a.GEN_AI_RESPONSE_MODEL) and draw(st.booleans()):
            span.attributes.add(key=key).value.string_value = draw(st.sampled_from(MODELS))
        elif key == a.GEN_AI_PROVIDER_NAME and draw(st.booleans()):
            span.attributes.add(key=key).value.string_value = draw(st.sampled_from(PROVIDERS))
        else:
            span.attributes.add(key=key).value.CopyFrom(_value(draw, key))
    return span


def _processor(telemetry: SelfTelemetry) -> GenAICostProcessor:
    proc = factory.create(
        factory.config_model(), ComponentSettings("genai_cost", telemetry, logging.getLogger("test.cost"))
    )
    assert isinstance(proc, GenAICostProcessor)
    return proc


def _metrics(telemetry: SelfTelemetry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in telemetry.registry.collect()
        if family.name.startswith("otel_receiver_genai")
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def _scanned(
    req: ExportTraceServiceRequest, telemetry: SelfTelemetry, c_pass: bool
) -> ExportTraceServiceRequest:
    """Priced from the request's bytes: by the C pass (fastpath.py) when it takes the
    request, or (``c_pass`` False) always by the Python scan of the values."""
    scanned = ExportTraceServiceRequest()
    scanned.CopyFrom(req)
    context = RequestContext(received_at_ns=1_780_000_000_000_000_000)
    context.set_wire(scanned, req.SerializeToString(), from_client=True)
    processor = _processor(telemetry)
    if not c_pass:
        processor._fast = None
    processor.process(scanned, context)
    wire = context.wire_for(scanned)
    context.sync_objects()  # the C pass appends to the wire alone
    assert wire is not None and ExportTraceServiceRequest.FromString(wire) == scanned
    return scanned


def _both_ways(req: ExportTraceServiceRequest) -> tuple[ExportTraceServiceRequest, ExportTraceServiceRequest]:
    """Priced from the bytes (the C pass and the Python scan alike) and through the objects."""
    objects = ExportTraceServiceRequest()
    objects.CopyFrom(req)
    t_c, t_scanned, t_objects = SelfTelemetry(), SelfTelemetry(), SelfTelemetry()
    by_c = _scanned(req, t_c, c_pass=True)
    scanned = _scanned(req, t_scanned, c_pass=False)
    _processor(t_objects).process(objects, RequestContext(received_at_ns=1_780_000_000_000_000_000))
    assert by_c.SerializeToString() == scanned.SerializeToString()
    assert _metrics(t_c) == _metrics(t_scanned) == _metrics(t_objects)
    return by_c, objects


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(spans(), min_size=1, max_size=6))
def test_the_scanned_and_the_object_paths_price_alike(batch: list[Span]) -> None:
    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    for span in batch:
        scope.spans.add().CopyFrom(span)
    scanned, objects = _both_ways(req)
    assert scanned == objects


def test_the_workload_prices_alike_and_mostly_on_the_scanned_fast_path(monkeypatch: Any) -> None:
    calls = {"objects": 0, "values": 0, "c_pass": 0}
    original_fast = GenAICostProcessor._price_fast

    def counted_fast(self: GenAICostProcessor, *args: Any) -> bool:
        handled = original_fast(self, *args)
        calls["c_pass"] += handled
        return handled

    monkeypatch.setattr(GenAICostProcessor, "_price_fast", counted_fast)
    for name in ("price_span", "price_values"):
        original = getattr(GenAICostProcessor, name)

        def counted(
            self: GenAICostProcessor, *args: Any, _original: Any = original, _name: str = name
        ) -> Any:
            calls["objects" if _name == "price_span" else "values"] += 1
            return _original(self, *args)

        monkeypatch.setattr(GenAICostProcessor, name, counted)
    priced = 0
    for req in generate_trace_requests(6, 100, seed=21):
        scanned, objects = _both_ways(req)
        assert scanned == objects
        priced += sum(
            kv.key == a.GEN_AI_USAGE_COST
            for rs in scanned.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
            for kv in span.attributes
        )
    assert priced > 100
    # every priced span of the Python scan took its fast path (price_values)
    assert calls["values"] >= priced
    if fastpath.available():
        assert calls["c_pass"] == 6  # and the C pass took every request


def test_the_scan_keys_are_in_slot_order() -> None:
    keys = cost_module._SCAN_KEYS
    assert [cost_module._CURRENT[k] for k in keys[: cost_module._SLOTS]] == list(range(cost_module._SLOTS))
    assert set(keys[cost_module._SLOTS :]) == set(cost_module._LEGACY)
