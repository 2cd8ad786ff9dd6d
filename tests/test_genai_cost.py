"""genai_cost: prices checked against per-million-token rates published by the providers,
written here as literals and multiplied by hand — never against genai-prices' own output.

Rates (USD per 1M tokens) from the providers' pricing pages: openai.com/api/pricing,
anthropic.com/pricing, ai.google.dev/pricing, mistral.ai/pricing, aws.amazon.com/bedrock/
pricing, azure.microsoft.com (Azure OpenAI / AI Foundry), api-docs.deepseek.com."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otel_receiver.attributes import any_value_to_python
from otel_receiver.component import ComponentSettings, RequestContext
from otel_receiver.telemetry import SelfTelemetry
from processors.genai_cost import GenAICostProcessor, PriceBook, TokenUsage, factory, price_usage
from processors.genai_normalize import factory as normalize_factory
from semconv import attributes as a

MTOK = Decimal(1_000_000)


def usd(*terms: tuple[int, str]) -> Decimal:
    """Hand pricing: sum of tokens x published USD-per-million rate, divided by a million."""
    return sum((Decimal(n) * Decimal(rate) for n, rate in terms), Decimal(0)) / MTOK


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * 1_000_000_000


NOW = "2026-11-01T12:00:00"


def make_processor(
    config: Mapping[str, Any] | None = None, telemetry: SelfTelemetry | None = None
) -> GenAICostProcessor:
    cfg = factory.config_model.model_validate(dict(config or {}))
    settings = ComponentSettings(
        "genai_cost", telemetry or SelfTelemetry(), logging.getLogger("test.genai_cost")
    )
    proc = factory.create(cfg, settings)
    assert isinstance(proc, GenAICostProcessor)
    return proc


def make_span(attrs: Mapping[str, Any], *, kind: int = Span.SPAN_KIND_CLIENT, start: str = NOW) -> Span:
    span = Span(kind=kind, start_time_unix_nano=ns(start), name="span")  # type: ignore[arg-type]
    for key, value in attrs.items():
        kv = span.attributes.add()
        kv.key = key
        if isinstance(value, bool):
            kv.value.bool_value = value
        elif isinstance(value, int):
            kv.value.int_value = value
        elif isinstance(value, float):
            kv.value.double_value = value
        else:
            kv.value.string_value = value
    return span


# A twin of each processor prices through the objects alone, so that every case here
# checks both paths: the request's bytes (the C fast path where it applies, as in the
# receiver) and the protobuf objects (OTLP/JSON requests come without bytes).
_TWIN_LOG = logging.getLogger("test.genai_cost.objects_twin")
_TWIN_LOG.disabled = True  # the tests count the log lines of the processor under test


def _objects_twin(proc: GenAICostProcessor) -> GenAICostProcessor:
    twin = GenAICostProcessor(
        proc.cfg, dataclasses.replace(proc.settings, telemetry=SelfTelemetry(), logger=_TWIN_LOG)
    )
    twin.book = proc.book  # same prices file and overrides, and the same resolution cache
    return twin


def run(proc: GenAICostProcessor, *spans: Span, tenant: str | None = None) -> list[dict[str, Any]]:
    results = []
    for processor, with_wire in ((proc, True), (_objects_twin(proc), False)):
        req = ExportTraceServiceRequest()
        ss = req.resource_spans.add().scope_spans.add()
        for s in spans:
            ss.spans.add().CopyFrom(s)
        context = RequestContext(tenant=tenant)
        if with_wire:
            context.set_wire(req, req.SerializeToString())
        out = processor.process(req, context)
        assert out is req
        wire = context.wire_for(req)
        context.sync_objects()
        if wire is not None:
            assert ExportTraceServiceRequest.FromString(wire) == req
        # read after the sync: it re-parses the request, and wrappers of its parts taken
        # before it (``ss``) no longer show the message
        spans_now = req.resource_spans[0].scope_spans[0].spans
        results.append([{kv.key: any_value_to_python(kv.value) for kv in s.attributes} for s in spans_now])
    assert repr(results[0]) == repr(results[1]), "the wire and objects paths differ"  # NaN-safe
    return results[0]


def chat(provider: str, model: str, op: str = a.OP_CHAT, **usage: int) -> dict[str, Any]:
    names = {
        "input": a.GEN_AI_USAGE_INPUT_TOKENS,
        "output": a.GEN_AI_USAGE_OUTPUT_TOKENS,
        "cache_read": a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        "cache_write": a.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        "reasoning": a.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
        "input_audio": a.GEN_AI_USAGE_INPUT_AUDIO_TOKENS,
    }
    attrs: dict[str, Any] = {
        a.GEN_AI_OPERATION_NAME: op,
        a.GEN_AI_PROVIDER_NAME: provider,
        a.GEN_AI_REQUEST_MODEL: model,
    }
    for k, v in usage.items():
        attrs[names[k]] = v
    return attrs


# (id, provider, model, usage, span start, expected USD computed by hand)
CASES: list[tuple[str, str, str, dict[str, int], str, Decimal]] = [
    # --- OpenAI: gpt-4o $2.50 in / $1.25 cached / $10 out ---
    (
        "openai-gpt-4o-cached",
        "openai",
        "gpt-4o",
        dict(input=1000, cache_read=400, output=500),
        NOW,
        usd((600, "2.50"), (400, "1.25"), (500, "10")),
    ),
    (
        "openai-gpt-4o-mini",
        "openai",
        "gpt-4o-mini",
        dict(input=12000, output=3000),
        NOW,
        usd((12000, "0.15"), (3000, "0.60")),
    ),
    (
        "openai-gpt-4o-mini-cached",
        "openai",
        "gpt-4o-mini",
        dict(input=10000, cache_read=8000, output=100),
        NOW,
        usd((2000, "0.15"), (8000, "0.075"), (100, "0.60")),
    ),
    # reasoning tokens are part of output_tokens and billed at the output rate, once
    (
        "openai-o1-reasoning",
        "openai",
        "o1",
        dict(input=2000, output=5000, reasoning=4000),
        NOW,
        usd((2000, "15"), (5000, "60")),
    ),
    # o3 price cut of 2025-06-10: $10/$40 before, $2/$8 after
    (
        "openai-o3-before-cut",
        "openai",
        "o3",
        dict(input=1000, output=1000),
        "2025-05-01T00:00:00",
        usd((1000, "10"), (1000, "40")),
    ),
    (
        "openai-o3-after-cut",
        "openai",
        "o3",
        dict(input=1000, output=1000),
        "2025-07-01T00:00:00",
        usd((1000, "2"), (1000, "8")),
    ),
    (
        "openai-gpt-4.1-cached",
        "openai",
        "gpt-4.1",
        dict(input=50000, cache_read=20000, output=2000),
        NOW,
        usd((30000, "2"), (20000, "0.50"), (2000, "8")),
    ),
    ("openai-embedding", "openai", "text-embedding-3-small", dict(input=100000), NOW, usd((100000, "0.02"))),
    (
        "openai-gpt-3.5-turbo",
        "openai",
        "gpt-3.5-turbo",
        dict(input=1234, output=567),
        NOW,
        usd((1234, "0.50"), (567, "1.50")),
    ),
    # --- Anthropic: cache reads 0.1x, 5-minute cache writes 1.25x the input rate ---
    (
        "anthropic-sonnet-3.5-cache",
        "anthropic",
        "claude-3-5-sonnet-20241022",
        dict(input=10000, cache_read=6000, cache_write=2000, output=800),
        NOW,
        usd((2000, "3"), (6000, "0.30"), (2000, "3.75"), (800, "15")),
    ),
    (
        "anthropic-haiku-3",
        "anthropic",
        "claude-3-haiku-20240307",
        dict(input=4000, output=1000),
        NOW,
        usd((4000, "0.25"), (1000, "1.25")),
    ),
    (
        "anthropic-opus-4.1",
        "anthropic",
        "claude-opus-4-1-20250805",
        dict(input=1000, output=2000),
        NOW,
        usd((1000, "15"), (2000, "75")),
    ),
    # Sonnet 4.5 long context: over 200K input tokens every token pays $6 / $22.50
    (
        "anthropic-sonnet-4.5-base-tier",
        "anthropic",
        "claude-sonnet-4-5",
        dict(input=150000, output=1000),
        NOW,
        usd((150000, "3"), (1000, "15")),
    ),
    (
        "anthropic-sonnet-4.5-long-context",
        "anthropic",
        "claude-sonnet-4-5",
        dict(input=250000, output=1000),
        NOW,
        usd((250000, "6"), (1000, "22.50")),
    ),
    # Sonnet 4.6: long-context premium until 2026-03-13, flat $3/$15 from then on
    (
        "anthropic-sonnet-4.6-tiered-period",
        "anthropic",
        "claude-sonnet-4-6",
        dict(input=300000, output=10),
        "2026-01-15T00:00:00",
        usd((300000, "6"), (10, "22.50")),
    ),
    (
        "anthropic-sonnet-4.6-flat-period",
        "anthropic",
        "claude-sonnet-4-6",
        dict(input=300000, output=10),
        "2026-04-01T00:00:00",
        usd((300000, "3"), (10, "15")),
    ),
    (
        "anthropic-haiku-3.5-all-cached",
        "anthropic",
        "claude-3-5-haiku-20241022",
        dict(input=5000, cache_read=5000),
        NOW,
        usd((5000, "0.08")),
    ),
    # --- Google ---
    (
        "gemini-2.0-flash",
        "gcp.gemini",
        "gemini-2.0-flash",
        dict(input=20000, output=5000),
        NOW,
        usd((20000, "0.10"), (5000, "0.40")),
    ),
    (
        "gemini-2.5-pro-cached",
        "gcp.gemini",
        "gemini-2.5-pro",
        dict(input=100000, cache_read=50000, output=2000, reasoning=1500),
        NOW,
        usd((50000, "1.25"), (50000, "0.125"), (2000, "10")),
    ),
    (
        "gemini-2.5-pro-over-200k",
        "gcp.vertex_ai",
        "gemini-2.5-pro",
        dict(input=300000, cache_read=100000, output=1000),
        NOW,
        usd((200000, "2.50"), (100000, "0.25"), (1000, "15")),
    ),
    (
        "gemini-1.5-flash-vertex",
        "gcp.vertex_ai",
        "gemini-1.5-flash-002",
        dict(input=1000, output=1000),
        NOW,
        usd((1000, "0.075"), (1000, "0.30")),
    ),
    (
        "gemini-2.5-flash-thinking",
        "gcp.gen_ai",
        "gemini-2.5-flash",
        dict(input=10000, output=10000, reasoning=8000),
        NOW,
        usd((10000, "0.30"), (10000, "2.50")),
    ),
    # audio input has its own rate ($1.00) inside input_tokens
    (
        "gemini-2.5-flash-audio",
        "gcp.gemini",
        "gemini-2.5-flash",
        dict(input=10000, input_audio=4000, output=100),
        NOW,
        usd((6000, "0.30"), (4000, "1.00"), (100, "2.50")),
    ),
    # --- Mistral ---
    (
        "mistral-large",
        "mistral_ai",
        "mistral-large-latest",
        dict(input=3000, output=1000),
        NOW,
        usd((3000, "2"), (1000, "6")),
    ),
    (
        "mistral-codestral",
        "mistral_ai",
        "codestral-latest",
        dict(input=10000, output=2000),
        NOW,
        usd((10000, "0.30"), (2000, "0.90")),
    ),
    (
        "mistral-small-before-2026-03-16",
        "mistral_ai",
        "mistral-small-latest",
        dict(input=10000, output=10000),
        "2026-02-01T00:00:00",
        usd((10000, "0.10"), (10000, "0.30")),
    ),
    (
        "mistral-small-after-2026-03-16",
        "mistral_ai",
        "mistral-small-latest",
        dict(input=10000, output=10000),
        "2026-05-01T00:00:00",
        usd((10000, "0.15"), (10000, "0.60")),
    ),
    (
        "mistral-large-4-launch",
        "mistral_ai",
        "mistral-large-4",
        dict(input=1_000_000),
        "2026-10-01T00:00:00",
        usd((1_000_000, "0.68")),
    ),
    (
        "mistral-large-4-oct-20",
        "mistral_ai",
        "mistral-large-4",
        dict(input=1_000_000),
        "2026-10-25T00:00:00",
        usd((1_000_000, "1.36")),
    ),
    (
        "mistral-large-4-oct-29",
        "mistral_ai",
        "mistral-large-4",
        dict(input=1_000_000),
        "2026-10-30T00:00:00",
        usd((1_000_000, "0.70")),
    ),
    # --- AWS Bedrock (model ids as Bedrock names them) ---
    (
        "bedrock-claude-3.5-sonnet",
        "aws.bedrock",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        dict(input=2000, output=300),
        NOW,
        usd((2000, "3"), (300, "15")),
    ),
    (
        "bedrock-nova-pro-cached",
        "aws.bedrock",
        "amazon.nova-pro-v1:0",
        dict(input=10000, cache_read=5000, output=1000),
        NOW,
        usd((5000, "0.80"), (5000, "0.20"), (1000, "3.20")),
    ),
    (
        "bedrock-llama-3.1-70b",
        "aws.bedrock",
        "meta.llama3-1-70b-instruct-v1:0",
        dict(input=1000, output=1000),
        NOW,
        usd((1000, "0.72"), (1000, "0.72")),
    ),
    (
        "bedrock-nova-micro",
        "aws.bedrock",
        "amazon.nova-micro-v1:0",
        dict(input=1_000_000, output=1_000_000),
        NOW,
        usd((1_000_000, "0.035"), (1_000_000, "0.14")),
    ),
    # --- Azure ---
    (
        "azure-openai-gpt-4o",
        "azure.ai.openai",
        "gpt-4o",
        dict(input=1000, output=1000),
        NOW,
        usd((1000, "2.50"), (1000, "10")),
    ),
    (
        "azure-inference-phi-4",
        "azure.ai.inference",
        "phi-4",
        dict(input=8000, output=2000),
        NOW,
        usd((8000, "0.125"), (2000, "0.50")),
    ),
    (
        "azure-gpt-35-turbo-deployment-name",
        "azure.ai.openai",
        "gpt-35-turbo",
        dict(input=1000, output=1000),
        NOW,
        usd((1000, "0.50"), (1000, "1.50")),
    ),
    # --- through a LiteLLM proxy: the model names the provider ---
    (
        "litellm-anthropic",
        "litellm",
        "anthropic/claude-3-5-sonnet-20241022",
        dict(input=2000, output=300),
        NOW,
        usd((2000, "3"), (300, "15")),
    ),
    # --- DeepSeek: standard hours 00:30-16:30 UTC, half price off-peak ---
    (
        "deepseek-chat-standard-hours",
        "deepseek",
        "deepseek-chat",
        dict(input=10000, output=1000),
        "2026-11-01T10:00:00",
        usd((10000, "0.27"), (1000, "1.10")),
    ),
    (
        "deepseek-chat-off-peak",
        "deepseek",
        "deepseek-chat",
        dict(input=10000, output=1000),
        "2026-11-01T20:00:00",
        usd((10000, "0.135"), (1000, "0.55")),
    ),
]


@pytest.mark.parametrize(
    ("provider", "model", "usage", "start", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_price_matches_published_rates(
    provider: str, model: str, usage: dict[str, int], start: str, expected: Decimal
) -> None:
    proc = make_processor()
    op = a.OP_EMBEDDINGS if "embedding" in model else a.OP_CHAT
    (out,) = run(proc, make_span(chat(provider, model, op, **usage), start=start))
    assert out[a.GEN_AI_USAGE_COST] == float(expected)
    assert out[a.GEN_AI_COST_PRICING] == "genai-prices@0.2.3"
    assert a.GEN_AI_COST_UNPRICED not in out
    # the exact Decimal, from the pure function the ClickHouse exporter can share
    prices = PriceBook().lookup(provider, [model], None)
    assert prices is not None
    sheet = prices.at(ns(start))
    assert sheet is not None
    cost = price_usage(TokenUsage(**usage), sheet)
    assert cost.total == expected
    assert cost.total == cost.input + cost.output + cost.cache_read + cost.cache_write + cost.request


def test_at_least_thirty_cases_across_providers() -> None:
    assert len(CASES) >= 30
    providers = {c[1] for c in CASES}
    assert {"openai", "anthropic", "gcp.gemini", "mistral_ai", "aws.bedrock", "azure.ai.openai"} <= providers


def test_breakdown_attributes() -> None:
    proc = make_processor()
    (out,) = run(
        proc,
        make_span(
            chat(
                "anthropic",
                "claude-3-5-sonnet-20241022",
                input=10000,
                cache_read=6000,
                cache_write=2000,
                output=800,
            )
        ),
    )
    assert out[a.GEN_AI_USAGE_COST_INPUT] == float(usd((2000, "3")))
    assert out[a.GEN_AI_USAGE_COST_CACHE_READ] == float(usd((6000, "0.30")))
    assert out[a.GEN_AI_USAGE_COST_CACHE_WRITE] == float(usd((2000, "3.75")))
    assert out[a.GEN_AI_USAGE_COST_OUTPUT] == float(usd((800, "15")))
    # no cache: the cache attributes are absent, not zero
    (plain,) = run(proc, make_span(chat("openai", "gpt-4o", input=10, output=10)))
    assert a.GEN_AI_USAGE_COST_CACHE_READ not in plain and a.GEN_AI_USAGE_COST_CACHE_WRITE not in plain


@pytest.mark.parametrize(
    ("model", "tier", "start", "expected"),
    [
        # OpenAI Flex processing: o3 $1.00 in / $0.25 cached / $4.00 out
        ("o3", "flex", NOW, usd((600, "1"), (400, "0.25"), (1000, "4"))),
        # Priority processing: gpt-5 $2.50 / $0.25 cached / $20
        ("gpt-5", "priority", NOW, usd((600, "2.50"), (400, "0.25"), (1000, "20"))),
        # the standard tier, named or implied
        ("gpt-5", "default", NOW, usd((600, "1.25"), (400, "0.125"), (1000, "10"))),
        ("gpt-5", None, NOW, usd((600, "1.25"), (400, "0.125"), (1000, "10"))),
        # genai-prices models tier prices from 2026-10-12 on: before, the standard price
        ("gpt-5", "priority", "2026-09-01T00:00:00", usd((600, "1.25"), (400, "0.125"), (1000, "10"))),
    ],
    ids=["o3-flex", "gpt-5-priority", "gpt-5-default", "gpt-5-no-tier", "gpt-5-priority-before-modelled"],
)
def test_openai_service_tier_prices(model: str, tier: str | None, start: str, expected: Decimal) -> None:
    attrs = chat("openai", model, input=1000, cache_read=400, output=1000)
    attrs[a.OPENAI_REQUEST_SERVICE_TIER] = "auto"
    if tier is not None:
        attrs[a.OPENAI_RESPONSE_SERVICE_TIER] = tier
    (out,) = run(make_processor(), make_span(attrs, start=start))
    assert out[a.GEN_AI_USAGE_COST] == float(expected)


def test_response_model_wins_over_request_model() -> None:
    attrs = chat("openai", "gpt-4o", input=1000, output=1000)
    attrs[a.GEN_AI_RESPONSE_MODEL] = "gpt-4o-2024-05-13"  # the older, dearer snapshot answered
    (out,) = run(make_processor(), make_span(attrs))
    assert out[a.GEN_AI_USAGE_COST] == float(usd((1000, "5"), (1000, "15")))


# --- Overrides ---------------------------------------------------------------------------

OVERRIDES = {
    "overrides": [
        {
            "name": "negotiated",
            "provider": "openai",
            "model": "gpt-4o",
            "input_mtok": 2.0,
            "output_mtok": 8.0,
        },
        {
            "name": "acme-contract",
            "provider": "openai",
            "model": "gpt-4o",
            "tenant": "acme",
            "input_mtok": 1.5,
            "output_mtok": 6.0,
            "cache_read_mtok": 0.15,
        },
        {"name": "self-hosted", "model": "llama-local-*", "input_mtok": 0.05, "output_mtok": 0.05},
    ]
}


def test_global_override_wins_over_library() -> None:
    (out,) = run(make_processor(OVERRIDES), make_span(chat("openai", "gpt-4o", input=1000, output=1000)))
    assert out[a.GEN_AI_USAGE_COST] == float(usd((1000, "2.0"), (1000, "8.0")))
    assert out[a.GEN_AI_COST_PRICING] == "override:negotiated"


def test_tenant_override_only_for_that_tenant() -> None:
    proc = make_processor(OVERRIDES)
    span = make_span(chat("openai", "gpt-4o", input=1000, cache_read=500, output=1000))
    (acme,) = run(proc, span, tenant="acme")
    assert acme[a.GEN_AI_USAGE_COST] == float(usd((500, "1.5"), (500, "0.15"), (1000, "6.0")))
    assert acme[a.GEN_AI_COST_PRICING] == "override:acme-contract"
    (other,) = run(proc, span, tenant="globex")
    # the global override has no cache price: cache reads pay its input rate
    assert other[a.GEN_AI_USAGE_COST] == float(usd((1000, "2.0"), (1000, "8.0")))
    assert other[a.GEN_AI_COST_PRICING] == "override:negotiated"


def test_override_prices_a_model_the_library_does_not_know() -> None:
    (out,) = run(
        make_processor(OVERRIDES), make_span(chat("vllm", "llama-local-70b", input=100000, output=50000))
    )
    assert out[a.GEN_AI_USAGE_COST] == float(usd((100000, "0.05"), (50000, "0.05")))
    assert out[a.GEN_AI_COST_PRICING] == "override:self-hosted"


def test_override_float_rates_are_exact_decimals() -> None:
    cfg = factory.config_model.model_validate(
        {"overrides": [{"name": "x", "model": "m", "input_mtok": 0.15, "output_mtok": 0.6}]}
    )
    assert cfg.overrides[0].input_mtok == Decimal("0.15")
    assert cfg.overrides[0].output_mtok == Decimal("0.6")


def test_override_with_valid_from_falls_back_to_library_before() -> None:
    config = {
        "overrides": [
            {
                "name": "new-deal",
                "provider": "openai",
                "model": "gpt-4o",
                "valid_from": "2026-06-01",
                "input_mtok": 1,
                "output_mtok": 4,
            }
        ]
    }
    proc = make_processor(config)
    attrs = chat("openai", "gpt-4o", input=1000, output=1000)
    (before,) = run(proc, make_span(attrs, start="2026-05-31T23:59:59"))
    (after,) = run(proc, make_span(attrs, start="2026-06-01T00:00:00"))
    assert before[a.GEN_AI_USAGE_COST] == float(usd((1000, "2.50"), (1000, "10")))
    assert before[a.GEN_AI_COST_PRICING] == "genai-prices@0.2.3"
    assert after[a.GEN_AI_USAGE_COST] == float(usd((1000, "1"), (1000, "4")))
    assert after[a.GEN_AI_COST_PRICING] == "override:new-deal"


def test_override_config_rejects_unknown_keys_and_negative_prices() -> None:
    with pytest.raises(ValueError, match="input_mtokk"):
        factory.config_model.model_validate({"overrides": [{"name": "x", "model": "m", "input_mtokk": 1}]})
    with pytest.raises(ValueError, match="input_mtok"):
        factory.config_model.model_validate({"overrides": [{"name": "x", "model": "m", "input_mtok": -1}]})


# --- Unknown models and bad data -----------------------------------------------------------


def test_unknown_model_is_flagged_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    telemetry = SelfTelemetry()
    proc = make_processor(telemetry=telemetry)
    span = make_span(chat("openai", "gpt-99-ultra", input=10, output=10))
    with caplog.at_level(logging.WARNING, logger="test.genai_cost"):
        outs = run(proc, span, span, span)
        run(proc, span)
    for out in outs:
        assert out[a.GEN_AI_COST_UNPRICED] is True
        assert a.GEN_AI_USAGE_COST not in out
    assert telemetry.value("otel_receiver_genai_unpriced_spans_total", {"model": "gpt-99-ultra"}) == 4
    assert sum("gpt-99-ultra" in r.getMessage() for r in caplog.records) == 1


def test_usage_without_a_model_is_flagged_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    telemetry = SelfTelemetry()
    proc = make_processor(telemetry=telemetry)
    attrs = chat("anthropic", "claude-3-5-haiku", input=100, output=10)
    del attrs[a.GEN_AI_REQUEST_MODEL]
    span = make_span(attrs)
    with caplog.at_level(logging.WARNING, logger="test.genai_cost"):
        outs = run(proc, span, span)
    for out in outs:
        assert out[a.GEN_AI_COST_UNPRICED] is True
        assert a.GEN_AI_USAGE_COST not in out
    assert telemetry.value("otel_receiver_genai_unpriced_spans_total", {"model": "(none)"}) == 2
    assert sum("no gen_ai.request.model" in r.getMessage() for r in caplog.records) == 1


def test_unknown_provider_does_not_borrow_another_vendors_price() -> None:
    (out,) = run(make_processor(), make_span(chat("ibm.watsonx.ai", "gpt-4o", input=10, output=10)))
    assert out[a.GEN_AI_COST_UNPRICED] is True


def test_two_instances_share_one_registry() -> None:
    telemetry = SelfTelemetry()
    first, second = make_processor(telemetry=telemetry), make_processor(telemetry=telemetry)
    span = make_span(chat("openai", "nope-model", input=1, output=1))
    run(first, span)
    run(second, span)
    assert telemetry.value("otel_receiver_genai_unpriced_spans_total", {"model": "nope-model"}) == 2


def test_cache_exceeding_input_is_flagged_not_priced() -> None:
    telemetry = SelfTelemetry()
    (out,) = run(
        make_processor(telemetry=telemetry),
        make_span(chat("anthropic", "claude-3-5-sonnet-20241022", input=100, cache_read=5000, output=10)),
    )
    assert out[a.GEN_AI_COST_ERROR] == a.COST_ERROR_NEGATIVE_REMAINDER
    assert a.GEN_AI_USAGE_COST not in out
    assert telemetry.value("otel_receiver_genai_cost_errors_total", {"reason": "negative_remainder"}) == 1


def test_reasoning_exceeding_output_is_flagged() -> None:
    (out,) = run(make_processor(), make_span(chat("openai", "o1", input=10, output=10, reasoning=11)))
    assert out[a.GEN_AI_COST_ERROR] == a.COST_ERROR_NEGATIVE_REMAINDER


@pytest.mark.parametrize(
    "bad",
    [-5, 12.5, "twelve", "-3", float("nan"), float("inf"), True],
    ids=["negative", "fraction", "text", "negative-text", "nan", "inf", "bool"],
)
def test_invalid_token_counts_never_crash(bad: Any) -> None:
    attrs = chat("openai", "gpt-4o", output=10)
    attrs[a.GEN_AI_USAGE_INPUT_TOKENS] = bad
    (out,) = run(make_processor(), make_span(attrs))
    assert out[a.GEN_AI_COST_ERROR] == a.COST_ERROR_INVALID_TOKENS
    assert a.GEN_AI_USAGE_COST not in out


def test_whole_number_doubles_and_digit_strings_are_counts() -> None:
    attrs = chat("openai", "gpt-4o")
    attrs[a.GEN_AI_USAGE_INPUT_TOKENS] = 1000.0
    attrs[a.GEN_AI_USAGE_OUTPUT_TOKENS] = "500"
    (out,) = run(make_processor(), make_span(attrs))
    assert out[a.GEN_AI_USAGE_COST] == float(usd((1000, "2.50"), (500, "10")))


def test_missing_output_counts_as_zero_and_spans_without_usage_are_untouched() -> None:
    proc = make_processor()
    (only_input,) = run(proc, make_span(chat("openai", "gpt-4o", input=1000)))
    assert only_input[a.GEN_AI_USAGE_COST] == float(usd((1000, "2.50")))
    no_usage = make_span(
        {a.GEN_AI_OPERATION_NAME: "chat", a.GEN_AI_REQUEST_MODEL: "gpt-4o", "http.method": "GET"}
    )
    (out,) = run(proc, no_usage)
    assert set(out) == {a.GEN_AI_OPERATION_NAME, a.GEN_AI_REQUEST_MODEL, "http.method"}


def test_span_without_start_time_uses_receive_time() -> None:
    span = make_span(chat("openai", "o3", input=1000, output=1000))
    span.start_time_unix_nano = 0
    (out,) = run(make_processor(), span)
    assert out[a.GEN_AI_USAGE_COST] == float(usd((1000, "2"), (1000, "8")))  # today's price


# --- Reported cost -----------------------------------------------------------------------------


def test_reported_cost_kept_and_mismatch_flagged() -> None:
    proc = make_processor()
    attrs = chat("openai", "gpt-4o", input=1000, output=1000)  # ours: 0.0125
    attrs[a.LOGFIRE_OPERATION_COST] = 0.0125
    (agree,) = run(proc, make_span(attrs))
    assert agree[a.GEN_AI_COST_REPORTED] == 0.0125
    assert a.GEN_AI_COST_MISMATCH not in agree
    attrs[a.LOGFIRE_OPERATION_COST] = 0.02
    (differ,) = run(proc, make_span(attrs))
    assert differ[a.GEN_AI_COST_REPORTED] == 0.02
    assert differ[a.GEN_AI_COST_MISMATCH] is True
    assert differ[a.GEN_AI_USAGE_COST] == 0.0125


def test_openlit_cost_under_our_name_becomes_reported() -> None:
    attrs = chat("openai", "gpt-4o", input=1000, output=1000)
    attrs[a.GEN_AI_USAGE_COST] = 0.5  # OpenLIT's client-side number
    proc = make_processor()
    (out,) = run(proc, make_span(attrs))
    assert out[a.GEN_AI_COST_REPORTED] == 0.5
    assert out[a.GEN_AI_COST_MISMATCH] is True
    assert out[a.GEN_AI_USAGE_COST] == 0.0125
    # priced again (e.g. by a second receiver tier): our own earlier number is not "reported"
    again = make_span(
        {k: v for k, v in out.items() if k not in (a.GEN_AI_COST_REPORTED, a.GEN_AI_COST_MISMATCH)}
    )
    (out2,) = run(proc, again)
    assert a.GEN_AI_COST_REPORTED not in out2 and a.GEN_AI_COST_MISMATCH not in out2


def test_mismatch_tolerance_is_configurable() -> None:
    attrs = chat("openai", "gpt-4o", input=1000, output=1000)  # 0.0125
    attrs[a.OI_COST_TOTAL] = 0.013  # 4% off
    (strict,) = run(make_processor(), make_span(attrs))
    (loose,) = run(make_processor({"mismatch_tolerance_relative": 0.05}), make_span(attrs))
    assert strict[a.GEN_AI_COST_MISMATCH] is True
    assert a.GEN_AI_COST_MISMATCH not in loose


# --- Exactness -------------------------------------------------------------------------------


def test_decimal_sum_of_a_million_spans_is_exact() -> None:
    """A million different calls priced one by one and summed as Decimal equal the exact
    total computed from the token sums (pricing is linear), to the last digit; the same
    sum in floats drifts."""
    prices = PriceBook().lookup("anthropic", ["claude-3-5-sonnet-20241022"], None)
    assert prices is not None
    sheet = prices.at(ns(NOW))
    assert sheet is not None
    total = Decimal(0)
    float_total = 0.0
    text = read = write = out = 0
    for i in range(1_000_000):
        usage = TokenUsage(1000 + 7 * (i % 1009), 13 + i % 997, 3 * (i % 101), i % 11)
        cost = price_usage(usage, sheet).total
        total += cost
        float_total += float(cost)
        text += usage.input - usage.cache_read - usage.cache_write
        read += usage.cache_read
        write += usage.cache_write
        out += usage.output
    expected = usd((text, "3"), (read, "0.30"), (write, "3.75"), (out, "15"))
    assert total == expected
    assert Decimal(float_total) != expected  # why the exact sum matters


def test_double_attribute_recovers_nine_decimals() -> None:
    """ClickHouse keeps CostUsd as Decimal(18,9) from the double: under $1M a double's 15-17
    significant digits hold every 9-decimal value."""
    cost = Decimal("987654.123456789")
    assert Decimal(repr(float(cost))).quantize(Decimal("1e-9")) == cost


# --- Offline price refresh ---------------------------------------------------------------------

PRICES_FILE = [
    {
        "id": "openai",
        "name": "OpenAI",
        "api_pattern": "https://api\\.openai\\.com",
        "models": [
            {
                "id": "gpt-4o",
                "match": {"or": [{"equals": "gpt-4o"}, {"starts_with": "gpt-4o-2024"}]},
                "prices": [
                    {"prices": {"input_mtok": "2.5", "output_mtok": "10"}},
                    {
                        "constraint": {"start_date": "2027-01-01"},
                        "prices": {"input_mtok": "1.25", "output_mtok": "5"},
                    },
                ],
            }
        ],
    }
]


def test_prices_file_replaces_bundled_data(tmp_path: Any) -> None:
    (tmp_path / "prices.json").write_text(json.dumps(PRICES_FILE))
    cfg = factory.config_model.model_validate({"prices_file": "prices.json"})
    settings = ComponentSettings(
        "genai_cost", SelfTelemetry(), logging.getLogger("t"), config_dir=str(tmp_path)
    )
    proc = factory.create(cfg, settings)
    assert isinstance(proc, GenAICostProcessor)
    attrs = chat("openai", "gpt-4o", input=1000, output=1000)
    (now,) = run(proc, make_span(attrs))
    (later,) = run(proc, make_span(attrs, start="2027-02-01T00:00:00"))
    assert now[a.GEN_AI_USAGE_COST] == float(usd((1000, "2.5"), (1000, "10")))
    assert later[a.GEN_AI_USAGE_COST] == float(usd((1000, "1.25"), (1000, "5")))
    assert now[a.GEN_AI_COST_PRICING] == "genai-prices@0.2.3+data:prices.json"
    (gone,) = run(proc, make_span(chat("anthropic", "claude-3-haiku-20240307", input=1, output=1)))
    assert gone[a.GEN_AI_COST_UNPRICED] is True


def test_bad_prices_file_fails_at_start(tmp_path: Any) -> None:
    (tmp_path / "prices.json").write_text('{"not": "a list"}')
    cfg = factory.config_model.model_validate({"prices_file": str(tmp_path / "prices.json")})
    with pytest.raises(ValueError, match="JSON array"):
        factory.create(cfg, ComponentSettings("genai_cost", SelfTelemetry(), logging.getLogger("t")))


def test_pricing_twice_overwrites_in_place() -> None:
    proc = make_processor()
    attrs = chat(
        "anthropic", "claude-3-5-sonnet-20241022", input=10000, cache_read=6000, cache_write=2000, output=8
    )
    attrs[a.LOGFIRE_OPERATION_COST] = 1.0
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add().spans.add().CopyFrom(make_span(attrs))
    proc.process(req, RequestContext())
    span = req.resource_spans[0].scope_spans[0].spans[0]
    first = [(kv.key, any_value_to_python(kv.value)) for kv in span.attributes]
    proc.process(req, RequestContext())
    second = [(kv.key, any_value_to_python(kv.value)) for kv in span.attributes]
    assert first == second
    keys = [k for k, _ in second]
    assert len(keys) == len(set(keys))
    assert dict(second)[a.GEN_AI_COST_MISMATCH] is True


def test_readme_example_config_is_valid() -> None:
    root = Path(__file__).resolve().parent.parent
    for readme, name in (
        (root / "processors" / "genai_cost" / "README.md", "genai_cost"),
        (root / "processors" / "genai_normalize" / "README.md", "genai_normalize"),
    ):
        block = re.search(r"```yaml\n(.*?)```", readme.read_text(), re.S)
        assert block is not None
        section = yaml.safe_load(block.group(1))["processors"][name]
        if name == "genai_cost":
            cfg = factory.config_model.model_validate(section)
            assert len(cfg.overrides) == 3
        else:
            normalize_factory.config_model.model_validate(section)


def test_an_internal_error_leaves_the_span_unpriced_and_the_batch_flowing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fault injection (no real input is known to trip the processor): a price lookup that
    raises must cost one span its price, not the whole batch."""
    telemetry = SelfTelemetry()
    proc = make_processor(telemetry=telemetry)

    def broken_lookup(*args: Any, **kwargs: Any) -> None:
        raise KeyError("secret-attribute-value")

    proc.book.lookup = broken_lookup  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="test.genai_cost"):
        outs = run(
            proc, make_span(chat("openai", "gpt-4o", input=1, output=1)), make_span({"http.route": "/x"})
        )
    assert a.GEN_AI_USAGE_COST not in outs[0]
    assert outs[1] == {"http.route": "/x"}
    assert telemetry.value("otel_receiver_genai_cost_errors_total", {"reason": "internal_error"}) == 1
    assert "KeyError" in caplog.text and "secret-attribute-value" not in caplog.text
