"""genai_cost on agent traces: usage that aggregates child spans is never priced twice.

The rule (processors/genai_cost/README.md): a span is priced when it carries its own
``gen_ai.usage.*`` and a model; ``gen_ai.aggregated_usage.*`` is never priced; usage on an
INTERNAL invoke_agent/create_agent/execute_tool span is a roll-up of its children and is
not priced; on a CLIENT agent span (a remote agent service, no local model spans) it is.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span

from semconv import attributes as a
from tests.test_genai_cost import make_processor, make_span, run, usd

INTERNAL = Span.SPAN_KIND_INTERNAL
CLIENT = Span.SPAN_KIND_CLIENT


def model_request(model: str, input_tokens: int, output_tokens: int, **extra: Any) -> Span:
    attrs = {
        a.GEN_AI_OPERATION_NAME: a.OP_CHAT,
        a.GEN_AI_SYSTEM: "openai",  # PydanticAI still writes the deprecated name
        a.GEN_AI_REQUEST_MODEL: model,
        a.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        a.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
        **extra,
    }
    return make_span(attrs, kind=CLIENT)


def total_cost(outs: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(repr(o[a.GEN_AI_USAGE_COST])) for o in outs if a.GEN_AI_USAGE_COST in o), Decimal(0))


def pydantic_ai_trace() -> list[Span]:
    """agent run (aggregate usage) > model request, tool call, model request."""
    run_span = make_span(
        {
            a.GEN_AI_OPERATION_NAME: a.OP_INVOKE_AGENT,
            a.GEN_AI_AGENT_NAME: "support_agent",
            a.GEN_AI_SYSTEM: "openai",
            a.GEN_AI_REQUEST_MODEL: "gpt-4o",
            a.GEN_AI_AGGREGATED_USAGE_INPUT_TOKENS: 3000,
            a.GEN_AI_AGGREGATED_USAGE_OUTPUT_TOKENS: 700,
            "gen_ai.aggregated_usage.details.cache_read_tokens": 1000,
            a.LOGFIRE_OPERATION_COST: 0.01,
        },
        kind=INTERNAL,
    )
    first = model_request("gpt-4o", 1000, 200, **{a.PYDANTIC_CACHE_READ_TOKENS: 0})
    tool = make_span(
        {a.GEN_AI_OPERATION_NAME: a.OP_EXECUTE_TOOL, a.GEN_AI_TOOL_NAME: "lookup"}, kind=INTERNAL
    )
    second = model_request("gpt-4o", 2000, 500, **{a.PYDANTIC_CACHE_READ_TOKENS: 1000})
    return [run_span, first, tool, second]


def test_pydantic_ai_trace_prices_model_requests_only() -> None:
    outs = run(make_processor(), *pydantic_ai_trace())
    agent, first, tool, second = outs
    assert a.GEN_AI_USAGE_COST not in agent and a.GEN_AI_COST_UNPRICED not in agent
    assert a.GEN_AI_USAGE_COST not in tool
    assert first[a.GEN_AI_USAGE_COST] == float(usd((1000, "2.50"), (200, "10")))
    assert second[a.GEN_AI_USAGE_COST] == float(usd((1000, "2.50"), (1000, "1.25"), (500, "10")))
    # the trace costs exactly its two calls, which is also the run's aggregate priced once
    assert total_cost(outs) == usd((2000, "2.50"), (1000, "1.25"), (700, "10"))


def test_pydantic_ai_trace_split_across_batches_gives_the_same_total() -> None:
    spans = pydantic_ai_trace()
    proc = make_processor()
    split = run(proc, spans[1]) + run(proc, spans[0], spans[3]) + run(proc, spans[2])
    assert total_cost(split) == total_cost(run(proc, *spans))


def test_nested_agents_with_plain_usage_count_each_call_once() -> None:
    """Frameworks that put plain gen_ai.usage.* totals on every agent span: an outer agent
    (all calls) over an inner agent (its calls) over three model calls."""

    def agent(name: str, input_tokens: int, output_tokens: int) -> Span:
        return make_span(
            {
                a.GEN_AI_OPERATION_NAME: a.OP_INVOKE_AGENT,
                a.GEN_AI_AGENT_NAME: name,
                a.GEN_AI_PROVIDER_NAME: "anthropic",
                a.GEN_AI_REQUEST_MODEL: "claude-3-5-sonnet-20241022",
                a.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
                a.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
            },
            kind=INTERNAL,
        )

    def call(input_tokens: int, output_tokens: int) -> Span:
        return make_span(
            {
                a.GEN_AI_OPERATION_NAME: a.OP_CHAT,
                a.GEN_AI_PROVIDER_NAME: "anthropic",
                a.GEN_AI_REQUEST_MODEL: "claude-3-5-sonnet-20241022",
                a.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
                a.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
            },
            kind=CLIENT,
        )

    spans = [
        agent("planner", 6000, 600),
        call(1000, 100),
        agent("researcher", 5000, 500),
        call(2000, 200),
        call(3000, 300),
    ]
    outs = run(make_processor(), *spans)
    assert [a.GEN_AI_USAGE_COST in o for o in outs] == [False, True, False, True, True]
    assert total_cost(outs) == usd((6000, "3"), (600, "15"))


def test_remote_agent_client_span_is_priced() -> None:
    """A CLIENT invoke_agent span (e.g. a hosted agent service) is the billed call itself."""
    span = make_span(
        {
            a.GEN_AI_OPERATION_NAME: a.OP_INVOKE_AGENT,
            a.GEN_AI_PROVIDER_NAME: "aws.bedrock",
            a.GEN_AI_REQUEST_MODEL: "anthropic.claude-3-5-sonnet-20240620-v1:0",
            a.GEN_AI_USAGE_INPUT_TOKENS: 2000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 300,
        },
        kind=CLIENT,
    )
    (out,) = run(make_processor(), span)
    assert out[a.GEN_AI_USAGE_COST] == float(usd((2000, "3"), (300, "15")))


def test_internal_agent_usage_priced_when_configured() -> None:
    span = make_span(
        {
            a.GEN_AI_OPERATION_NAME: a.OP_INVOKE_AGENT,
            a.GEN_AI_PROVIDER_NAME: "openai",
            a.GEN_AI_REQUEST_MODEL: "gpt-4o",
            a.GEN_AI_USAGE_INPUT_TOKENS: 1000,
            a.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
        },
        kind=INTERNAL,
    )
    (default,) = run(make_processor(), span)
    (opted_in,) = run(make_processor({"price_internal_agent_spans": True}), span)
    assert a.GEN_AI_USAGE_COST not in default
    assert opted_in[a.GEN_AI_USAGE_COST] == float(usd((1000, "2.50"), (100, "10")))


def test_openinference_agent_kind_is_an_agent_span() -> None:
    """OpenInference AGENT spans carrying token counts are roll-ups too."""
    span = make_span(
        {
            a.OPENINFERENCE_SPAN_KIND: "AGENT",
            a.OI_LLM_MODEL_NAME: "gpt-4o",
            a.OI_LLM_PROVIDER: "openai",
            a.OI_TOKEN_COUNT_PROMPT: 1000,
            a.OI_TOKEN_COUNT_COMPLETION: 100,
        },
        kind=INTERNAL,
    )
    (out,) = run(make_processor(), span)
    assert a.GEN_AI_USAGE_COST not in out


def test_openinference_chain_span_with_token_counts_is_a_roll_up() -> None:
    span = make_span(
        {
            a.OPENINFERENCE_SPAN_KIND: "CHAIN",
            a.OI_LLM_MODEL_NAME: "gpt-4o",
            a.OI_TOKEN_COUNT_PROMPT: 1000,
            a.OI_TOKEN_COUNT_COMPLETION: 100,
        },
        kind=INTERNAL,
    )
    llm = make_span(
        {
            a.OPENINFERENCE_SPAN_KIND: "LLM",
            a.OI_LLM_MODEL_NAME: "gpt-4o",
            a.OI_TOKEN_COUNT_PROMPT: 1000,
            a.OI_TOKEN_COUNT_COMPLETION: 100,
        },
        kind=INTERNAL,
    )
    chain, call = run(make_processor(), span, llm)
    assert a.GEN_AI_USAGE_COST not in chain and a.GEN_AI_COST_UNPRICED not in chain
    assert call[a.GEN_AI_USAGE_COST] == float(usd((1000, "2.50"), (100, "10")))
