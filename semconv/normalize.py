"""Older and vendor GenAI attribute names mapped to the current OTel GenAI names.

``RULES`` is the normalisation table (documented row by row in ``semconv/README.md``);
``normalize_attributes`` applies it to one span's attribute list in place, in a single
scan, so that every later processor reads only current names. ``TOKEN_COUNTING`` records
for each source whether its token counts already include their subsets (OTel semantics:
input includes cache read/creation, output includes reasoning) or report them apart.

Nothing here is generic key renaming from a library: the mapping *is* the knowledge
(which emitter wrote what, and what its counts mean), so it is written out as data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from otel_receiver.attributes import Attributes, remove, set_int, set_str
from semconv import attributes as a

# Sources (the "source" column of the table).
OTEL_DEPRECATED: Final = "otel-genai-deprecated"
OPENLLMETRY: Final = "openllmetry"
OPENINFERENCE: Final = "openinference"
PYDANTIC_AI: Final = "pydantic-ai"
OPENLIT: Final = "openlit"


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table: ``old`` (written by ``source``) means ``new``.

    ``rename`` rules replace the old key (mode ``rewrite``); derived rules (``rename`` False)
    add ``new`` from a key that keeps its own meaning (e.g. ``openinference.span.kind``)
    and never remove it. ``values`` maps the old value to the current one (lower-cased
    lookup) for enumerations such as provider names.
    """

    source: str
    old: str
    new: str
    rename: bool = True
    values: Mapping[str, str] | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class TokenCounting:
    """Whether a source's input count includes cache tokens and its output count
    includes reasoning tokens (both True under the OTel GenAI conventions)."""

    input_includes_cache: bool = True
    output_includes_reasoning: bool = True


INCLUSIVE: Final = TokenCounting()
EXCLUSIVE: Final = TokenCounting(input_includes_cache=False, output_includes_reasoning=False)

# What each source documents. Everyone we read is inclusive today; emitters that copy a
# provider's raw, exclusive counts (Anthropic's input_tokens excludes cache reads and
# writes; Gemini's candidates count excludes thoughts) are declared per deployment with
# ``exclusive_sources`` in the genai_normalize / genai_cost config.
TOKEN_COUNTING: Final[Mapping[str, TokenCounting]] = {
    "otel-genai": INCLUSIVE,  # spec: cache and reasoning counts are parts of input/output
    OTEL_DEPRECATED: INCLUSIVE,  # prompt/completion_tokens had the same meaning
    OPENLLMETRY: INCLUSIVE,  # folds Anthropic cache tokens into prompt_tokens
    OPENINFERENCE: INCLUSIVE,  # spec: prompt_details.* and completion_details.* are parts
    PYDANTIC_AI: INCLUSIVE,  # RequestUsage.input_tokens includes cache read/write tokens
    OPENLIT: INCLUSIVE,
}

# Provider names written by older conventions and vendors -> gen_ai.provider.name values.
PROVIDER_VALUES: Final[Mapping[str, str]] = {
    "az.ai.inference": "azure.ai.inference",
    "az.ai.openai": "azure.ai.openai",
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "gemini": "gcp.gemini",
    "google-gla": "gcp.gemini",
    "google": "gcp.gen_ai",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "google-vertex": "gcp.vertex_ai",
    "mistral": "mistral_ai",
    "mistralai": "mistral_ai",
    "bedrock": "aws.bedrock",
    "aws": "aws.bedrock",
    "xai": "x_ai",
    "grok": "x_ai",
    "watsonx": "ibm.watsonx.ai",
}

TRACELOOP_REQUEST_TYPES: Final[Mapping[str, str]] = {
    "chat": a.OP_CHAT,
    "completion": a.OP_TEXT_COMPLETION,
    "embedding": a.OP_EMBEDDINGS,
}
OPENINFERENCE_KINDS: Final[Mapping[str, str]] = {
    "llm": a.OP_CHAT,
    "embedding": a.OP_EMBEDDINGS,
    "agent": a.OP_INVOKE_AGENT,
    "tool": a.OP_EXECUTE_TOOL,
}

RULES: Final[tuple[Rule, ...]] = (
    # OTel GenAI semconv: names deprecated in favour of the current ones.
    Rule(
        OTEL_DEPRECATED,
        a.GEN_AI_SYSTEM,
        a.GEN_AI_PROVIDER_NAME,
        values=PROVIDER_VALUES,
        note="deprecated in semconv 1.37, replaced by gen_ai.provider.name",
    ),
    Rule(
        OTEL_DEPRECATED,
        a.GEN_AI_USAGE_PROMPT_TOKENS,
        a.GEN_AI_USAGE_INPUT_TOKENS,
        note="deprecated in semconv 1.27; also OpenLLMetry's LLM_USAGE_PROMPT_TOKENS",
    ),
    Rule(
        OTEL_DEPRECATED,
        a.GEN_AI_USAGE_COMPLETION_TOKENS,
        a.GEN_AI_USAGE_OUTPUT_TOKENS,
        note="deprecated in semconv 1.27; also OpenLLMetry's LLM_USAGE_COMPLETION_TOKENS",
    ),
    Rule(
        OTEL_DEPRECATED,
        a.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER,
        a.OPENAI_RESPONSE_SERVICE_TIER,
        note="deprecated in semconv 1.37 for openai.response.service_tier",
    ),
    Rule(
        OTEL_DEPRECATED,
        a.GEN_AI_OPENAI_REQUEST_SERVICE_TIER,
        a.OPENAI_REQUEST_SERVICE_TIER,
        note="deprecated in semconv 1.37 for openai.request.service_tier",
    ),
    # OpenLLMetry / Traceloop (opentelemetry-semantic-conventions-ai SpanAttributes).
    Rule(
        OPENLLMETRY,
        a.TRACELOOP_CACHE_READ_INPUT_TOKENS,
        a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        note="LLM_USAGE_CACHE_READ_INPUT_TOKENS",
    ),
    Rule(
        OPENLLMETRY,
        a.TRACELOOP_CACHE_CREATION_INPUT_TOKENS,
        a.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        note="LLM_USAGE_CACHE_CREATION_INPUT_TOKENS",
    ),
    Rule(
        OPENLLMETRY,
        a.TRACELOOP_REASONING_TOKENS,
        a.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
        note="LLM_USAGE_REASONING_TOKENS",
    ),
    Rule(
        OPENLLMETRY,
        a.LLM_USAGE_PROMPT_TOKENS,
        a.GEN_AI_USAGE_INPUT_TOKENS,
        note="pre-gen_ai releases of OpenLLMetry",
    ),
    Rule(
        OPENLLMETRY,
        a.LLM_USAGE_COMPLETION_TOKENS,
        a.GEN_AI_USAGE_OUTPUT_TOKENS,
        note="pre-gen_ai releases of OpenLLMetry",
    ),
    Rule(
        OPENLLMETRY,
        a.LLM_USAGE_CACHE_READ_INPUT_TOKENS,
        a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        note="Traceloop JS SDKs",
    ),
    Rule(OPENLLMETRY, a.LLM_REQUEST_MODEL, a.GEN_AI_REQUEST_MODEL, note="pre-gen_ai releases"),
    Rule(OPENLLMETRY, a.LLM_RESPONSE_MODEL, a.GEN_AI_RESPONSE_MODEL, note="pre-gen_ai releases"),
    Rule(
        OPENLLMETRY, a.LLM_VENDOR, a.GEN_AI_PROVIDER_NAME, values=PROVIDER_VALUES, note="pre-gen_ai releases"
    ),
    Rule(
        OPENLLMETRY,
        a.TRACELOOP_REQUEST_TYPE,
        a.GEN_AI_OPERATION_NAME,
        values=TRACELOOP_REQUEST_TYPES,
        note="LLM_REQUEST_TYPE: chat/completion/embedding",
    ),
    Rule(
        OPENLLMETRY,
        a.TRACELOOP_TOTAL_COST,
        a.GEN_AI_COST_REPORTED,
        note="LLM_USAGE_TOOL_COST: a cost computed by the client",
    ),
    # OpenInference (Arize): llm.* attributes.
    Rule(OPENINFERENCE, a.OI_LLM_MODEL_NAME, a.GEN_AI_REQUEST_MODEL, note="LLM_MODEL_NAME"),
    Rule(
        OPENINFERENCE,
        a.OI_LLM_PROVIDER,
        a.GEN_AI_PROVIDER_NAME,
        values=PROVIDER_VALUES,
        note="LLM_PROVIDER (hosting provider)",
    ),
    Rule(
        OPENINFERENCE,
        a.OI_LLM_SYSTEM,
        a.GEN_AI_PROVIDER_NAME,
        values=PROVIDER_VALUES,
        note="LLM_SYSTEM (model vendor); llm.provider wins when both are present",
    ),
    Rule(OPENINFERENCE, a.OI_TOKEN_COUNT_PROMPT, a.GEN_AI_USAGE_INPUT_TOKENS, note="LLM_TOKEN_COUNT_PROMPT"),
    Rule(
        OPENINFERENCE,
        a.OI_TOKEN_COUNT_COMPLETION,
        a.GEN_AI_USAGE_OUTPUT_TOKENS,
        note="LLM_TOKEN_COUNT_COMPLETION",
    ),
    Rule(
        OPENINFERENCE,
        a.OI_TOKEN_COUNT_CACHE_READ,
        a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        note="LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ",
    ),
    Rule(
        OPENINFERENCE,
        a.OI_TOKEN_COUNT_CACHE_WRITE,
        a.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        note="LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_WRITE",
    ),
    Rule(
        OPENINFERENCE,
        a.OI_TOKEN_COUNT_REASONING,
        a.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
        note="LLM_TOKEN_COUNT_COMPLETION_DETAILS_REASONING",
    ),
    Rule(
        OPENINFERENCE,
        a.OI_TOKEN_COUNT_PROMPT_AUDIO,
        a.GEN_AI_USAGE_INPUT_AUDIO_TOKENS,
        note="LLM_TOKEN_COUNT_PROMPT_DETAILS_AUDIO",
    ),
    Rule(
        OPENINFERENCE,
        a.OI_TOKEN_COUNT_COMPLETION_AUDIO,
        a.GEN_AI_USAGE_OUTPUT_AUDIO_TOKENS,
        note="LLM_TOKEN_COUNT_COMPLETION_DETAILS_AUDIO",
    ),
    Rule(OPENINFERENCE, a.OI_COST_TOTAL, a.GEN_AI_COST_REPORTED, note="LLM_COST_TOTAL"),
    Rule(
        OPENINFERENCE,
        a.OPENINFERENCE_SPAN_KIND,
        a.GEN_AI_OPERATION_NAME,
        rename=False,
        values=OPENINFERENCE_KINDS,
        note="LLM/EMBEDDING/AGENT/TOOL; other kinds have no operation",
    ),
    # PydanticAI (and Logfire, which exports PydanticAI's spans unchanged).
    Rule(
        PYDANTIC_AI,
        a.PYDANTIC_CACHE_READ_TOKENS,
        a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        note="RequestUsage.cache_read_tokens",
    ),
    Rule(
        PYDANTIC_AI,
        a.PYDANTIC_CACHE_WRITE_TOKENS,
        a.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        note="RequestUsage.cache_write_tokens",
    ),
    Rule(
        PYDANTIC_AI,
        a.PYDANTIC_REASONING_TOKENS,
        a.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
        note="details['reasoning_tokens'] (OpenAI, Groq, ...)",
    ),
    # PydanticAI 0.x: request_tokens already summed the Anthropic input, cache-read and
    # cache-creation counts (inclusive); the details kept the provider's own names.
    Rule(
        PYDANTIC_AI,
        a.PYDANTIC_LEGACY_CACHE_READ_INPUT_TOKENS,
        a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        note="0.x details['cache_read_input_tokens'] (Anthropic)",
    ),
    Rule(
        PYDANTIC_AI,
        a.PYDANTIC_LEGACY_CACHE_CREATION_INPUT_TOKENS,
        a.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        note="0.x details['cache_creation_input_tokens'] (Anthropic)",
    ),
    Rule(
        PYDANTIC_AI,
        a.PYDANTIC_LEGACY_CACHED_TOKENS,
        a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        note="0.x details['cached_tokens'] (OpenAI prompt_tokens_details)",
    ),
    Rule(
        PYDANTIC_AI,
        a.LOGFIRE_OPERATION_COST,
        a.GEN_AI_COST_REPORTED,
        note="cost PydanticAI computed with genai-prices",
    ),
    # OpenLIT writes the client's own estimate under our output name; it is kept as the
    # reported cost (see normalize_attributes: only when we did not write it ourselves).
    Rule(
        OPENLIT,
        a.GEN_AI_USAGE_COST,
        a.GEN_AI_COST_REPORTED,
        note="OpenLIT's client-side estimate; skipped when gen_ai.cost.pricing is present",
    ),
)

RULE_BY_KEY: Final[Mapping[str, Rule]] = {r.old: r for r in RULES}
_RULE_KEYS: Final = frozenset(RULE_BY_KEY)
TABLE_KEYS: Final = tuple(sorted(_RULE_KEYS))  # for otel_receiver.spanscan.positions

# Indexed message attributes flattened by OpenLLMetry and OpenInference.
MESSAGE_PREFIXES: Final = (
    a.TRACELOOP_PROMPT_PREFIX,
    a.TRACELOOP_COMPLETION_PREFIX,
    a.OI_INPUT_MESSAGES_PREFIX,
    a.OI_OUTPUT_MESSAGES_PREFIX,
)
_INPUT_PREFIXES: Final = (a.TRACELOOP_PROMPT_PREFIX, a.OI_INPUT_MESSAGES_PREFIX)

_INPUT_COUNT_KEYS: Final = frozenset(r.old for r in RULES if r.new == a.GEN_AI_USAGE_INPUT_TOKENS)
_OUTPUT_COUNT_KEYS: Final = frozenset(r.old for r in RULES if r.new == a.GEN_AI_USAGE_OUTPUT_TOKENS)

ExclusiveSources = frozenset[tuple[str, str | None]]


def current_provider(value: str | None) -> str | None:
    """``value`` as a gen_ai.provider.name (legacy and vendor spellings mapped, lower-cased)."""
    if value is None:
        return None
    low = value.lower()
    return PROVIDER_VALUES.get(low, low)


def counting_for(source: str, provider: str | None, exclusive: ExclusiveSources) -> TokenCounting:
    """Token semantics of ``source`` for ``provider``: a deployment's ``exclusive_sources``
    (pairs ``(source, provider)``, provider None for all) override the table."""
    if (source, provider) in exclusive or (source, None) in exclusive:
        return EXCLUSIVE
    return TOKEN_COUNTING.get(source, INCLUSIVE)


def _int_of(v: AnyValue | None) -> int:
    if v is None:
        return 0
    kind = v.WhichOneof("value")
    if kind == "int_value":
        return v.int_value
    if kind == "double_value" and v.double_value.is_integer():
        return int(v.double_value)
    if kind == "string_value" and v.string_value.isdigit():
        return int(v.string_value)
    return 0


def _map_value(v: AnyValue, values: Mapping[str, str]) -> None:
    if v.WhichOneof("value") == "string_value":
        low = v.string_value.lower()
        mapped = values.get(low)
        if mapped is not None:
            v.string_value = mapped
        elif values is PROVIDER_VALUES:
            # gen_ai.provider.name values are lower-case ("OpenAI" from OpenLLMetry)
            v.string_value = low


def normalize_attributes(
    attributes: Attributes,
    *,
    keep_original: bool = False,
    exclusive: ExclusiveSources = frozenset(),
) -> int:
    """Apply the table to one attribute list in place; returns how many names changed.

    Current names always win: an old key whose new name is already present is only
    dropped (``rewrite``) or left alone (``keep_original``). In ``rewrite`` mode the key
    of the KeyValue is changed where it stands, so nothing is copied. Counts from a
    source declared exclusive are made inclusive (input += cache read + cache creation,
    output += reasoning), so the current names always carry OTel semantics.
    """
    # The keys in one comprehension, then set operations in C: spans already using
    # current names (the common case) cost one pass and no per-key Python branching.
    keys = [kv.key for kv in attributes]
    has_messages = False
    for key in keys:
        if key.startswith(MESSAGE_PREFIXES):
            has_messages = True
            break
    hits: list[int] | None = None
    if not _RULE_KEYS.isdisjoint(keys):
        hits = [i for i, key in enumerate(keys) if key in RULE_BY_KEY]
    elif not has_messages:
        return 0

    present = set(keys)
    if a.GEN_AI_COST_PRICING in present and a.GEN_AI_USAGE_COST in present:
        # gen_ai.usage.cost is our own output from an earlier pass, not a client's estimate.
        hits = [i for i in hits or () if attributes[i].key != a.GEN_AI_USAGE_COST]
    # llm.provider (hosting) is more specific than llm.system (vendor): apply it first.
    ordered = sorted(hits or (), key=lambda i: attributes[i].key == a.OI_LLM_SYSTEM)
    changed = 0
    drop: list[int] = []
    input_source: str | None = None
    output_source: str | None = None
    for i in ordered:
        kv = attributes[i]
        rule = RULE_BY_KEY[kv.key]
        if rule.new in present:
            if keep_original or not rule.rename:
                continue
            drop.append(i)
            changed += 1
            continue
        if kv.key in _INPUT_COUNT_KEYS:
            input_source = rule.source
        elif kv.key in _OUTPUT_COUNT_KEYS:
            output_source = rule.source
        if rule.values is not None and not rule.rename:
            if kv.value.WhichOneof("value") != "string_value":
                continue
            mapped = rule.values.get(kv.value.string_value.lower())
            if mapped is None:
                continue
            set_str(attributes, rule.new, mapped)
        elif keep_original or not rule.rename:
            new = attributes.add()
            new.key = rule.new
            new.value.CopyFrom(kv.value)
            if rule.values is not None:
                _map_value(new.value, rule.values)
        else:
            kv.key = rule.new
            if rule.values is not None:
                _map_value(kv.value, rule.values)
        present.add(rule.new)
        changed += 1
    if drop:
        remove_at(attributes, drop)
    if has_messages:
        changed += _fold_messages(attributes, keep_original, present)
    if exclusive and (input_source is not None or output_source is not None):
        _make_inclusive(attributes, input_source, output_source, exclusive)
    return changed


def remove_at(attributes: Attributes, indexes: Iterable[int]) -> None:
    for i in sorted(indexes, reverse=True):
        del attributes[i]


def _make_inclusive(
    attributes: Attributes,
    input_source: str | None,
    output_source: str | None,
    exclusive: ExclusiveSources,
) -> None:
    provider: str | None = None
    values: dict[str, AnyValue] = {}
    for kv in attributes:
        values[kv.key] = kv.value
    pv = values.get(a.GEN_AI_PROVIDER_NAME)
    if pv is not None and pv.WhichOneof("value") == "string_value":
        provider = pv.string_value
    if input_source is not None and not counting_for(input_source, provider, exclusive).input_includes_cache:
        extra = _int_of(values.get(a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)) + _int_of(
            values.get(a.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)
        )
        if extra:
            set_int(
                attributes,
                a.GEN_AI_USAGE_INPUT_TOKENS,
                _int_of(values.get(a.GEN_AI_USAGE_INPUT_TOKENS)) + extra,
            )
    if (
        output_source is not None
        and not counting_for(output_source, provider, exclusive).output_includes_reasoning
    ):
        extra = _int_of(values.get(a.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS))
        if extra:
            set_int(
                attributes,
                a.GEN_AI_USAGE_OUTPUT_TOKENS,
                _int_of(values.get(a.GEN_AI_USAGE_OUTPUT_TOKENS)) + extra,
            )


def _fold_messages(attributes: Attributes, keep_original: bool, present: set[str]) -> int:
    """``gen_ai.prompt.N.role/content`` (OpenLLMetry) and ``llm.input_messages.N.message.
    role/content`` (OpenInference) -> ``gen_ai.input.messages`` / ``gen_ai.output.messages``
    in the GenAI JSON message format (role + text parts). Rare, so not optimised."""
    messages: dict[bool, dict[int, dict[str, str]]] = {True: {}, False: {}}
    used: dict[bool, set[str]] = {True: set(), False: set()}
    for kv in attributes:
        key = kv.key
        if not key.startswith(MESSAGE_PREFIXES):
            continue
        is_input = key.startswith(_INPUT_PREFIXES)
        prefix = next(p for p in MESSAGE_PREFIXES if key.startswith(p))
        index_text, _, field = key[len(prefix) :].partition(".")
        field = field.removeprefix("message.")
        if not index_text.isdigit() or field not in ("role", "content"):
            continue
        if kv.value.WhichOneof("value") != "string_value":
            continue
        messages[is_input].setdefault(int(index_text), {})[field] = kv.value.string_value
        used[is_input].add(key)
    changed = 0
    drop: set[str] = set()
    for is_input, by_index in messages.items():
        target = a.GEN_AI_INPUT_MESSAGES if is_input else a.GEN_AI_OUTPUT_MESSAGES
        if not by_index:
            continue
        drop |= used[is_input]
        if target in present:
            changed += 1
            continue
        doc = [
            {
                "role": m.get("role", "user" if is_input else "assistant"),
                "parts": [{"type": "text", "content": m["content"]}] if "content" in m else [],
            }
            for _, m in sorted(by_index.items())
        ]
        set_str(attributes, target, json.dumps(doc, ensure_ascii=False))
        present.add(target)
        changed += 1
    if not keep_original and drop:
        remove(attributes, drop)
    return changed


def source_of_key(key: str) -> str:
    """The source column for ``key`` ("otel-genai" for current names)."""
    rule = RULE_BY_KEY.get(key)
    return rule.source if rule is not None else "otel-genai"
