"""The normalisation table: every old and vendor naming means the same as the current names,
and gives the same cost whether genai_normalize ran (rewrite or keep_original) or not."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otel_receiver.attributes import any_value_to_python
from otel_receiver.component import ComponentSettings, RequestContext, Signal
from otel_receiver.telemetry import SelfTelemetry
from processors.genai_normalize import factory as normalize_factory
from semconv import attributes as a
from semconv.normalize import PROVIDER_VALUES, RULE_BY_KEY, RULES, normalize_attributes
from tests.test_genai_cost import make_processor, make_span, run, usd

O1 = {a.GEN_AI_REQUEST_MODEL: "o1"}
SONNET = "claude-3-5-sonnet-20241022"

# (id, attributes as the emitter writes them, the same span in current names, hand cost)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], Any]] = [
    (
        "otel-deprecated",
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_SYSTEM: "openai",
            a.GEN_AI_REQUEST_MODEL: "gpt-4o",
            a.GEN_AI_USAGE_PROMPT_TOKENS: 1000,
            a.GEN_AI_USAGE_COMPLETION_TOKENS: 500,
        },
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_PROVIDER_NAME: "openai",
            a.GEN_AI_REQUEST_MODEL: "gpt-4o",
            a.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 500,
        },
        usd((1000, "2.50"), (500, "10")),
    ),
    (
        "openllmetry",
        {
            a.TRACELOOP_REQUEST_TYPE: "chat",
            a.GEN_AI_SYSTEM: "OpenAI",
            **O1,
            a.GEN_AI_USAGE_PROMPT_TOKENS: 1000,
            a.GEN_AI_USAGE_COMPLETION_TOKENS: 500,
            a.TRACELOOP_CACHE_READ_INPUT_TOKENS: 400,
            a.TRACELOOP_REASONING_TOKENS: 300,
        },
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_PROVIDER_NAME: "openai",
            **O1,
            a.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 500,
            a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 400,
            a.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 300,
        },
        usd((600, "15"), (400, "7.50"), (500, "60")),
    ),
    (
        "openllmetry-pre-gen_ai",
        {
            a.TRACELOOP_REQUEST_TYPE: "completion",
            a.LLM_VENDOR: "OpenAI",
            a.LLM_REQUEST_MODEL: "gpt-4o",
            a.LLM_RESPONSE_MODEL: "gpt-4o-2024-08-06",
            a.LLM_USAGE_PROMPT_TOKENS: 1000,
            a.LLM_USAGE_COMPLETION_TOKENS: 500,
            a.LLM_USAGE_CACHE_READ_INPUT_TOKENS: 400,
        },
        {
            a.GEN_AI_OPERATION_NAME: "text_completion",
            a.GEN_AI_PROVIDER_NAME: "openai",
            a.GEN_AI_REQUEST_MODEL: "gpt-4o",
            a.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
            a.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 500,
            a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 400,
        },
        usd((600, "2.50"), (400, "1.25"), (500, "10")),
    ),
    (
        "openllmetry-anthropic-cache",
        {
            a.GEN_AI_SYSTEM: "Anthropic",
            a.GEN_AI_REQUEST_MODEL: SONNET,
            a.GEN_AI_USAGE_PROMPT_TOKENS: 10000,
            a.GEN_AI_USAGE_COMPLETION_TOKENS: 800,
            a.TRACELOOP_CACHE_READ_INPUT_TOKENS: 6000,
            a.TRACELOOP_CACHE_CREATION_INPUT_TOKENS: 2000,
        },
        {
            a.GEN_AI_PROVIDER_NAME: "anthropic",
            a.GEN_AI_REQUEST_MODEL: SONNET,
            a.GEN_AI_USAGE_INPUT_TOKENS: 10000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 800,
            a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 6000,
            a.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 2000,
        },
        usd((2000, "3"), (6000, "0.30"), (2000, "3.75"), (800, "15")),
    ),
    (
        "openinference",
        {
            a.OPENINFERENCE_SPAN_KIND: "LLM",
            a.OI_LLM_PROVIDER: "openai",
            a.OI_LLM_SYSTEM: "openai",
            a.OI_LLM_MODEL_NAME: "o1",
            a.OI_TOKEN_COUNT_PROMPT: 1000,
            a.OI_TOKEN_COUNT_COMPLETION: 500,
            a.OI_TOKEN_COUNT_CACHE_READ: 400,
            a.OI_TOKEN_COUNT_REASONING: 300,
        },
        {
            a.OPENINFERENCE_SPAN_KIND: "LLM",
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_PROVIDER_NAME: "openai",
            **O1,
            a.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 500,
            a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 400,
            a.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 300,
        },
        usd((600, "15"), (400, "7.50"), (500, "60")),
    ),
    (
        "openinference-anthropic-cache",
        {
            a.OPENINFERENCE_SPAN_KIND: "LLM",
            a.OI_LLM_SYSTEM: "anthropic",
            a.OI_LLM_MODEL_NAME: SONNET,
            a.OI_TOKEN_COUNT_PROMPT: 10000,
            a.OI_TOKEN_COUNT_COMPLETION: 800,
            a.OI_TOKEN_COUNT_CACHE_READ: 6000,
            a.OI_TOKEN_COUNT_CACHE_WRITE: 2000,
        },
        {
            a.OPENINFERENCE_SPAN_KIND: "LLM",
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_PROVIDER_NAME: "anthropic",
            a.GEN_AI_REQUEST_MODEL: SONNET,
            a.GEN_AI_USAGE_INPUT_TOKENS: 10000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 800,
            a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 6000,
            a.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 2000,
        },
        usd((2000, "3"), (6000, "0.30"), (2000, "3.75"), (800, "15")),
    ),
    (
        "openinference-audio",
        {
            a.OPENINFERENCE_SPAN_KIND: "LLM",
            a.OI_LLM_PROVIDER: "google",
            a.OI_LLM_MODEL_NAME: "gemini-2.5-flash",
            a.OI_TOKEN_COUNT_PROMPT: 10000,
            a.OI_TOKEN_COUNT_PROMPT_AUDIO: 4000,
            a.OI_TOKEN_COUNT_COMPLETION: 100,
            a.OI_TOKEN_COUNT_COMPLETION_AUDIO: 0,
        },
        {
            a.OPENINFERENCE_SPAN_KIND: "LLM",
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_PROVIDER_NAME: "gcp.gen_ai",
            a.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
            a.GEN_AI_USAGE_INPUT_TOKENS: 10000,
            a.GEN_AI_USAGE_INPUT_AUDIO_TOKENS: 4000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
            a.GEN_AI_USAGE_OUTPUT_AUDIO_TOKENS: 0,
        },
        usd((6000, "0.30"), (4000, "1.00"), (100, "2.50")),
    ),
    (
        "openinference-embedding",
        {
            a.OPENINFERENCE_SPAN_KIND: "EMBEDDING",
            a.OI_LLM_SYSTEM: "openai",
            a.OI_LLM_MODEL_NAME: "text-embedding-3-small",
            a.OI_TOKEN_COUNT_PROMPT: 100000,
        },
        {
            a.OPENINFERENCE_SPAN_KIND: "EMBEDDING",
            a.GEN_AI_OPERATION_NAME: "embeddings",
            a.GEN_AI_PROVIDER_NAME: "openai",
            a.GEN_AI_REQUEST_MODEL: "text-embedding-3-small",
            a.GEN_AI_USAGE_INPUT_TOKENS: 100000,
        },
        usd((100000, "0.02")),
    ),
    (
        "pydantic-ai",
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_SYSTEM: "openai",
            **O1,
            a.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 500,
            a.PYDANTIC_CACHE_READ_TOKENS: 400,
            a.PYDANTIC_REASONING_TOKENS: 300,
        },
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_PROVIDER_NAME: "openai",
            **O1,
            a.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 500,
            a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 400,
            a.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 300,
        },
        usd((600, "15"), (400, "7.50"), (500, "60")),
    ),
    (
        "pydantic-ai-anthropic-cache",
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_SYSTEM: "anthropic",
            a.GEN_AI_REQUEST_MODEL: SONNET,
            a.GEN_AI_USAGE_INPUT_TOKENS: 10000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 800,
            a.PYDANTIC_CACHE_READ_TOKENS: 6000,
            a.PYDANTIC_CACHE_WRITE_TOKENS: 2000,
        },
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_PROVIDER_NAME: "anthropic",
            a.GEN_AI_REQUEST_MODEL: SONNET,
            a.GEN_AI_USAGE_INPUT_TOKENS: 10000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 800,
            a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 6000,
            a.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 2000,
        },
        usd((2000, "3"), (6000, "0.30"), (2000, "3.75"), (800, "15")),
    ),
    (
        # PydanticAI 0.x with Anthropic: request_tokens = input + cache read + cache
        # creation; the raw counts stay in details under Anthropic's names.
        "pydantic-ai-0.x-anthropic-details",
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_SYSTEM: "anthropic",
            a.GEN_AI_REQUEST_MODEL: SONNET,
            a.GEN_AI_USAGE_INPUT_TOKENS: 10000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 800,
            "gen_ai.usage.details.input_tokens": 2000,
            "gen_ai.usage.details.output_tokens": 800,
            a.PYDANTIC_LEGACY_CACHE_READ_INPUT_TOKENS: 6000,
            a.PYDANTIC_LEGACY_CACHE_CREATION_INPUT_TOKENS: 2000,
        },
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_PROVIDER_NAME: "anthropic",
            a.GEN_AI_REQUEST_MODEL: SONNET,
            a.GEN_AI_USAGE_INPUT_TOKENS: 10000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 800,
            "gen_ai.usage.details.input_tokens": 2000,
            "gen_ai.usage.details.output_tokens": 800,
            a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 6000,
            a.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 2000,
        },
        # 2,000 uncached at $3/M, 6,000 cache reads at $0.30/M, 2,000 cache writes at
        # $3.75/M, 800 output at $15/M = 0.0258 (0.042 if the reads were priced as input)
        usd((2000, "3"), (6000, "0.30"), (2000, "3.75"), (800, "15")),
    ),
    (
        # PydanticAI 0.x with OpenAI: details = prompt_tokens_details + completion_tokens_details
        "pydantic-ai-0.x-openai-details",
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_SYSTEM: "openai",
            **O1,
            a.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 500,
            a.PYDANTIC_LEGACY_CACHED_TOKENS: 400,
            a.PYDANTIC_REASONING_TOKENS: 300,
        },
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_PROVIDER_NAME: "openai",
            **O1,
            a.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 500,
            a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 400,
            a.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 300,
        },
        usd((600, "15"), (400, "7.50"), (500, "60")),
    ),
    (
        "pydantic-ai-google-gla",
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_SYSTEM: "google-gla",
            a.GEN_AI_REQUEST_MODEL: "gemini-2.0-flash",
            a.GEN_AI_USAGE_INPUT_TOKENS: 20000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 5000,
        },
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_PROVIDER_NAME: "gcp.gemini",
            a.GEN_AI_REQUEST_MODEL: "gemini-2.0-flash",
            a.GEN_AI_USAGE_INPUT_TOKENS: 20000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 5000,
        },
        usd((20000, "0.10"), (5000, "0.40")),
    ),
    (
        "pydantic-ai-bedrock",
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_SYSTEM: "bedrock",
            a.GEN_AI_REQUEST_MODEL: "amazon.nova-pro-v1:0",
            a.GEN_AI_USAGE_INPUT_TOKENS: 10000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 1000,
        },
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_PROVIDER_NAME: "aws.bedrock",
            a.GEN_AI_REQUEST_MODEL: "amazon.nova-pro-v1:0",
            a.GEN_AI_USAGE_INPUT_TOKENS: 10000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 1000,
        },
        usd((10000, "0.80"), (1000, "3.20")),
    ),
    (
        "pydantic-ai-mistral",
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_SYSTEM: "mistral",
            a.GEN_AI_REQUEST_MODEL: "mistral-large-latest",
            a.GEN_AI_USAGE_INPUT_TOKENS: 3000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 1000,
        },
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_PROVIDER_NAME: "mistral_ai",
            a.GEN_AI_REQUEST_MODEL: "mistral-large-latest",
            a.GEN_AI_USAGE_INPUT_TOKENS: 3000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 1000,
        },
        usd((3000, "2"), (1000, "6")),
    ),
    (
        "otel-deprecated-openai-service-tier",
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_SYSTEM: "openai",
            a.GEN_AI_REQUEST_MODEL: "o3",
            a.GEN_AI_OPENAI_REQUEST_SERVICE_TIER: "auto",
            a.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER: "flex",
            a.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 1000,
        },
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_PROVIDER_NAME: "openai",
            a.GEN_AI_REQUEST_MODEL: "o3",
            a.OPENAI_REQUEST_SERVICE_TIER: "auto",
            a.OPENAI_RESPONSE_SERVICE_TIER: "flex",
            a.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 1000,
        },
        usd((1000, "1"), (1000, "4")),  # o3 Flex processing
    ),
    (
        "otel-deprecated-azure",
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_SYSTEM: "az.ai.openai",
            a.GEN_AI_REQUEST_MODEL: "gpt-4o",
            a.GEN_AI_USAGE_PROMPT_TOKENS: 1000,
            a.GEN_AI_USAGE_COMPLETION_TOKENS: 1000,
        },
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_PROVIDER_NAME: "azure.ai.openai",
            a.GEN_AI_REQUEST_MODEL: "gpt-4o",
            a.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 1000,
        },
        usd((1000, "2.50"), (1000, "10")),
    ),
    (
        "otel-deprecated-vertex",
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_SYSTEM: "vertex_ai",
            a.GEN_AI_REQUEST_MODEL: "gemini-2.5-pro",
            a.GEN_AI_USAGE_PROMPT_TOKENS: 1000,
            a.GEN_AI_USAGE_COMPLETION_TOKENS: 1000,
        },
        {
            a.GEN_AI_OPERATION_NAME: "chat",
            a.GEN_AI_PROVIDER_NAME: "gcp.vertex_ai",
            a.GEN_AI_REQUEST_MODEL: "gemini-2.5-pro",
            a.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 1000,
        },
        usd((1000, "1.25"), (1000, "10")),
    ),
]


def as_dict(span: Span) -> dict[str, Any]:
    return {kv.key: any_value_to_python(kv.value) for kv in span.attributes}


def normalized(attrs: dict[str, Any], keep_original: bool) -> Span:
    span = make_span(attrs)
    normalize_attributes(span.attributes, keep_original=keep_original)
    return span


@pytest.mark.parametrize(("legacy", "current"), [c[1:3] for c in CASES], ids=[c[0] for c in CASES])
def test_rewrite_gives_exactly_the_current_names(legacy: dict[str, Any], current: dict[str, Any]) -> None:
    assert as_dict(normalized(legacy, keep_original=False)) == current


@pytest.mark.parametrize(("legacy", "current"), [c[1:3] for c in CASES], ids=[c[0] for c in CASES])
def test_keep_original_adds_current_names_and_keeps_the_rest(
    legacy: dict[str, Any], current: dict[str, Any]
) -> None:
    out = as_dict(normalized(legacy, keep_original=True))
    assert out.items() >= current.items()
    assert out.keys() >= legacy.keys()


@pytest.mark.parametrize(("legacy", "current", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_naming_gives_the_same_cost(
    legacy: dict[str, Any], current: dict[str, Any], expected: Any
) -> None:
    proc = make_processor()
    costs = [
        run(proc, make_span(current))[0],
        run(proc, make_span(legacy))[0],  # genai_cost alone reads the old names
        run(proc, normalized(legacy, keep_original=False))[0],
        run(proc, normalized(legacy, keep_original=True))[0],
    ]
    assert [c.get(a.GEN_AI_USAGE_COST) for c in costs] == [float(expected)] * 4


REPORTED_KEYS = [a.LOGFIRE_OPERATION_COST, a.OI_COST_TOTAL, a.TRACELOOP_TOTAL_COST, a.GEN_AI_USAGE_COST]


@pytest.mark.parametrize("key", REPORTED_KEYS)
def test_client_reported_cost_names(key: str) -> None:
    base = {
        a.GEN_AI_OPERATION_NAME: "chat",
        a.GEN_AI_PROVIDER_NAME: "openai",
        a.GEN_AI_REQUEST_MODEL: "gpt-4o",
        a.GEN_AI_USAGE_INPUT_TOKENS: 1000,
        a.GEN_AI_USAGE_OUTPUT_TOKENS: 1000,
    }
    span = normalized({**base, key: 0.02}, keep_original=False)
    assert as_dict(span)[a.GEN_AI_COST_REPORTED] == 0.02
    assert key == a.GEN_AI_USAGE_COST or key not in as_dict(span)
    for s in (span, make_span({**base, key: 0.02})):
        (out,) = run(make_processor(), s)
        assert out[a.GEN_AI_COST_REPORTED] == 0.02
        assert out[a.GEN_AI_COST_MISMATCH] is True  # ours is 0.0125
        assert out[a.GEN_AI_USAGE_COST] == 0.0125


def test_every_rule_is_exercised() -> None:
    used = {k for _, legacy, _, _ in CASES for k in legacy} | set(REPORTED_KEYS)
    assert set(RULE_BY_KEY) <= used, sorted(set(RULE_BY_KEY) - used)


@pytest.mark.parametrize(("old", "new"), sorted(PROVIDER_VALUES.items()))
def test_provider_values(old: str, new: str) -> None:
    out = as_dict(normalized({a.GEN_AI_SYSTEM: old.upper()}, keep_original=False))
    assert out == {a.GEN_AI_PROVIDER_NAME: new}


def test_current_names_win_over_old_ones() -> None:
    attrs = {
        a.GEN_AI_USAGE_INPUT_TOKENS: 10,
        a.GEN_AI_USAGE_PROMPT_TOKENS: 99,
        a.GEN_AI_PROVIDER_NAME: "openai",
        a.GEN_AI_SYSTEM: "anthropic",
    }
    assert as_dict(normalized(attrs, keep_original=False)) == {
        a.GEN_AI_USAGE_INPUT_TOKENS: 10,
        a.GEN_AI_PROVIDER_NAME: "openai",
    }
    assert as_dict(normalized(attrs, keep_original=True)) == attrs


def test_normalisation_is_idempotent() -> None:
    for _, legacy, _, _ in CASES:
        for keep in (False, True):
            span = normalized(legacy, keep_original=keep)
            before = as_dict(span)
            assert normalize_attributes(span.attributes, keep_original=keep) == 0
            assert as_dict(span) == before


def test_openinference_chain_kind_gets_no_operation() -> None:
    out = as_dict(normalized({a.OPENINFERENCE_SPAN_KIND: "CHAIN"}, keep_original=False))
    assert out == {a.OPENINFERENCE_SPAN_KIND: "CHAIN"}


def test_aggregated_usage_is_not_renamed() -> None:
    attrs = {a.GEN_AI_AGGREGATED_USAGE_INPUT_TOKENS: 5, a.GEN_AI_AGGREGATED_USAGE_OUTPUT_TOKENS: 6}
    assert as_dict(normalized(attrs, keep_original=False)) == attrs


def test_openllmetry_indexed_prompts_become_messages() -> None:
    attrs = {
        "gen_ai.prompt.0.role": "system",
        "gen_ai.prompt.0.content": "Be brief.",
        "gen_ai.prompt.1.role": "user",
        "gen_ai.prompt.1.content": "Hi ü",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "Hello",
        "gen_ai.completion.0.tool_calls.0.name": "lookup",
    }
    out = as_dict(normalized(attrs, keep_original=False))
    assert json.loads(out[a.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Hi ü"}]},
    ]
    assert json.loads(out[a.GEN_AI_OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello"}]}
    ]
    assert set(out) == {
        a.GEN_AI_INPUT_MESSAGES,
        a.GEN_AI_OUTPUT_MESSAGES,
        "gen_ai.completion.0.tool_calls.0.name",
    }
    kept = as_dict(normalized(attrs, keep_original=True))
    assert kept.keys() >= attrs.keys()


def test_openinference_indexed_messages_become_messages() -> None:
    attrs = {
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.content": "second",
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "first",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "answer",
    }
    out = as_dict(normalized(attrs, keep_original=False))
    assert [m["parts"][0]["content"] for m in json.loads(out[a.GEN_AI_INPUT_MESSAGES])] == ["first", "second"]
    assert json.loads(out[a.GEN_AI_OUTPUT_MESSAGES])[0]["role"] == "assistant"
    assert set(out) == {a.GEN_AI_INPUT_MESSAGES, a.GEN_AI_OUTPUT_MESSAGES}


EXCLUSIVE_ANTHROPIC = {
    a.GEN_AI_SYSTEM: "anthropic",
    a.GEN_AI_REQUEST_MODEL: SONNET,
    a.GEN_AI_USAGE_PROMPT_TOKENS: 2000,  # raw Anthropic: uncached input only
    a.GEN_AI_USAGE_COMPLETION_TOKENS: 800,
    a.TRACELOOP_CACHE_READ_INPUT_TOKENS: 6000,
    a.TRACELOOP_CACHE_CREATION_INPUT_TOKENS: 2000,
}
EXCLUSIVE_EXPECTED = usd((2000, "3"), (6000, "0.30"), (2000, "3.75"), (800, "15"))


def test_exclusive_source_made_inclusive_by_normalize() -> None:
    span = make_span(EXCLUSIVE_ANTHROPIC)
    normalize_attributes(span.attributes, exclusive=frozenset({("otel-genai-deprecated", "anthropic")}))
    assert as_dict(span)[a.GEN_AI_USAGE_INPUT_TOKENS] == 10000
    (out,) = run(make_processor(), span)
    assert out[a.GEN_AI_USAGE_COST] == float(EXCLUSIVE_EXPECTED)
    # the same data read as inclusive is a negative remainder: flagged, not priced
    (wrong,) = run(make_processor(), make_span(EXCLUSIVE_ANTHROPIC))
    assert wrong[a.GEN_AI_COST_ERROR] == a.COST_ERROR_NEGATIVE_REMAINDER


def test_exclusive_source_in_genai_cost_config() -> None:
    proc = make_processor(
        {"exclusive_sources": [{"source": "otel-genai-deprecated", "provider": "anthropic"}]}
    )
    (out,) = run(proc, make_span(EXCLUSIVE_ANTHROPIC))
    assert out[a.GEN_AI_USAGE_COST] == float(EXCLUSIVE_EXPECTED)
    # other providers of the same source stay inclusive
    openai = {
        a.GEN_AI_SYSTEM: "openai",
        a.GEN_AI_REQUEST_MODEL: "gpt-4o",
        a.GEN_AI_USAGE_PROMPT_TOKENS: 1000,
        a.GEN_AI_USAGE_COMPLETION_TOKENS: 500,
        a.TRACELOOP_CACHE_READ_INPUT_TOKENS: 400,
    }
    (o,) = run(proc, make_span(openai))
    assert o[a.GEN_AI_USAGE_COST] == float(usd((600, "2.50"), (400, "1.25"), (500, "10")))


def test_genai_normalize_processor() -> None:
    settings = ComponentSettings("genai_normalize", SelfTelemetry(), logging.getLogger("t"))
    with pytest.raises(ValueError, match="mode"):
        normalize_factory.config_model.model_validate({"mode": "sometimes"})
    for mode, keep in (("rewrite", False), ("keep_original", True)):
        proc = normalize_factory.create(
            normalize_factory.config_model.model_validate({"mode": mode}), settings
        )
        req = ExportTraceServiceRequest()
        legacy = CASES[1][1]
        req.resource_spans.add().scope_spans.add().spans.add().CopyFrom(make_span(legacy))
        assert proc.process(req, RequestContext()) is req
        out = as_dict(req.resource_spans[0].scope_spans[0].spans[0])
        assert out == as_dict(normalized(legacy, keep_original=keep))


def test_readme_documents_every_rule() -> None:
    readme = (Path(__file__).resolve().parent.parent / "semconv" / "README.md").read_text()
    rows = {
        m.group(1): m.group(2) for m in re.finditer(r"^\| [^|]+ \| `([^`]+)` \| `([^`]+)` \|", readme, re.M)
    }
    assert rows == {r.old: r.new for r in RULES}


def test_genai_normalize_handles_events_logs_and_metric_points() -> None:
    settings = ComponentSettings("genai_normalize", SelfTelemetry(), logging.getLogger("t"))
    proc = normalize_factory.create(normalize_factory.config_model(), settings)
    assert normalize_factory.signals == {Signal.TRACES, Signal.METRICS, Signal.LOGS}

    traces = ExportTraceServiceRequest()
    span = traces.resource_spans.add().scope_spans.add().spans.add()
    event = span.events.add(name="gen_ai.choice")
    kv = event.attributes.add(key=a.GEN_AI_SYSTEM)
    kv.value.string_value = "vertex_ai"
    proc.process(traces, RequestContext())
    assert as_dict_attrs(traces.resource_spans[0].scope_spans[0].spans[0].events[0].attributes) == {
        a.GEN_AI_PROVIDER_NAME: "gcp.vertex_ai"
    }

    logs = ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add()
    kv = record.attributes.add(key=a.GEN_AI_SYSTEM)
    kv.value.string_value = "az.ai.inference"
    proc.process(logs, RequestContext())
    assert as_dict_attrs(logs.resource_logs[0].scope_logs[0].log_records[0].attributes) == {
        a.GEN_AI_PROVIDER_NAME: "azure.ai.inference"
    }

    metrics = ExportMetricsServiceRequest()
    metric = metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="gen_ai.client.token.usage")
    point = metric.histogram.data_points.add()
    for key, value in ((a.GEN_AI_SYSTEM, "openai"), (a.GEN_AI_TOKEN_TYPE, "input")):
        kv = point.attributes.add(key=key)
        kv.value.string_value = value
    proc.process(metrics, RequestContext())
    got = metrics.resource_metrics[0].scope_metrics[0].metrics[0].histogram.data_points[0].attributes
    assert as_dict_attrs(got) == {a.GEN_AI_PROVIDER_NAME: "openai", a.GEN_AI_TOKEN_TYPE: "input"}


def as_dict_attrs(attributes: Any) -> dict[str, Any]:
    return {kv.key: any_value_to_python(kv.value) for kv in attributes}
