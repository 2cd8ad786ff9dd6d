"""Attribute names. GenAI names follow the OpenTelemetry GenAI semantic conventions;
the ``gen_ai.cost.*``, ``pii.*``, ``audit.*`` and ``anomaly.*`` names are this
project's contract (DESIGN.md)."""

from typing import Final

# --- Resource / general ---------------------------------------------------------------
SERVICE_NAME: Final = "service.name"
SERVICE_NAMESPACE: Final = "service.namespace"
SERVICE_INSTANCE_ID: Final = "service.instance.id"
ERROR_TYPE: Final = "error.type"

# --- OTel GenAI semantic conventions -------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_AGENT_ID: Final = "gen_ai.agent.id"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
# OpenAI-specific (semconv registry "openai.*"): the tier that served, and priced, the call
OPENAI_RESPONSE_SERVICE_TIER: Final = "openai.response.service_tier"
OPENAI_REQUEST_SERVICE_TIER: Final = "openai.request.service_tier"

# Operation names (gen_ai.operation.name values)
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_EMBEDDINGS: Final = "embeddings"
OP_GENERATE_CONTENT: Final = "generate_content"
OP_INVOKE_AGENT: Final = "invoke_agent"
OP_CREATE_AGENT: Final = "create_agent"
OP_EXECUTE_TOOL: Final = "execute_tool"
# Operations whose spans, unless a CLIENT call to a remote agent, usually sum their
# children's usage: their token counts are not counted (or priced) a second time.
AGENT_OPERATIONS: Final = frozenset({OP_INVOKE_AGENT, OP_CREATE_AGENT, OP_EXECUTE_TOOL})

# --- Cost (genai_cost processor) ------------------------------------------------------
GEN_AI_USAGE_COST: Final = "gen_ai.usage.cost"
GEN_AI_USAGE_COST_INPUT: Final = "gen_ai.usage.cost.input"
GEN_AI_USAGE_COST_OUTPUT: Final = "gen_ai.usage.cost.output"
GEN_AI_USAGE_COST_CACHE_READ: Final = "gen_ai.usage.cost.cache_read"
GEN_AI_USAGE_COST_CACHE_WRITE: Final = "gen_ai.usage.cost.cache_write"
GEN_AI_COST_PRICING: Final = "gen_ai.cost.pricing"
GEN_AI_COST_UNPRICED: Final = "gen_ai.cost.unpriced"
GEN_AI_COST_REPORTED: Final = "gen_ai.cost.reported"
GEN_AI_COST_MISMATCH: Final = "gen_ai.cost.mismatch"

# --- PII (pii_redaction processor) ----------------------------------------------------
PII_REDACTED_COUNT: Final = "pii.redacted.count"
PII_REDACTED_TYPES: Final = "pii.redacted.types"
# Not in DESIGN.md: the redactions of each type, in the order of pii.redacted.types, so
# that per-type counts downstream (pii_redactions_total{type}) are exact.
PII_REDACTED_COUNTS: Final = "pii.redacted.counts"

# --- Audit ---------------------------------------------------------------------------
AUDIT_PREFIX: Final = "audit."  # reserved: written only from authenticated credentials
AUDIT_ACTOR_ID: Final = "audit.actor.id"
AUDIT_TENANT_ID: Final = "audit.tenant.id"
AUDIT_ACTION: Final = "audit.action"
AUDIT_RESOURCE_TYPE: Final = "audit.resource.type"
AUDIT_RECORD_ID: Final = "audit.record.id"

# --- Anomaly -------------------------------------------------------------------------
ANOMALY_FLAGGED: Final = "anomaly.flagged"
ANOMALY_KINDS: Final = "anomaly.kinds"
ANOMALY_SCORE: Final = "anomaly.score"
ANOMALY_KIND_LATENCY: Final = "latency"
ANOMALY_KIND_ERROR_RATE: Final = "error_rate"
ANOMALY_KIND_TOKENS: Final = "tokens"
ANOMALY_KIND_COST: Final = "cost"

# --- Cost: written by genai_cost beyond DESIGN.md's list (proposed to the lead) --------
# Why a span with usage got no cost: "negative_remainder" (a subset count such as cache
# read exceeds its total), "invalid_tokens" (negative or non-integer count).
GEN_AI_COST_ERROR: Final = "gen_ai.cost.error"
COST_ERROR_NEGATIVE_REMAINDER: Final = "negative_remainder"
COST_ERROR_INVALID_TOKENS: Final = "invalid_tokens"

# --- Older and vendor names, read by semconv.normalize (never written) ----------------
# OTel GenAI semconv, deprecated names (replaced by gen_ai.provider.name, input/output_tokens)
GEN_AI_SYSTEM: Final = "gen_ai.system"
GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"
GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"
GEN_AI_OPENAI_RESPONSE_SERVICE_TIER: Final = "gen_ai.openai.response.service_tier"
GEN_AI_OPENAI_REQUEST_SERVICE_TIER: Final = "gen_ai.openai.request.service_tier"

# OpenLLMetry / Traceloop (opentelemetry-semantic-conventions-ai)
TRACELOOP_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read_input_tokens"
TRACELOOP_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation_input_tokens"
TRACELOOP_REASONING_TOKENS: Final = "gen_ai.usage.reasoning_tokens"
TRACELOOP_TOTAL_COST: Final = "gen_ai.usage.total_cost"
TRACELOOP_REQUEST_TYPE: Final = "llm.request.type"
TRACELOOP_PROMPT_PREFIX: Final = "gen_ai.prompt."
TRACELOOP_COMPLETION_PREFIX: Final = "gen_ai.completion."
LLM_USAGE_PROMPT_TOKENS: Final = "llm.usage.prompt_tokens"
LLM_USAGE_COMPLETION_TOKENS: Final = "llm.usage.completion_tokens"
LLM_USAGE_CACHE_READ_INPUT_TOKENS: Final = "llm.usage.cache_read_input_tokens"
LLM_REQUEST_MODEL: Final = "llm.request.model"
LLM_RESPONSE_MODEL: Final = "llm.response.model"
LLM_VENDOR: Final = "llm.vendor"

# OpenInference (Arize Phoenix)
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"
OI_LLM_MODEL_NAME: Final = "llm.model_name"
OI_LLM_PROVIDER: Final = "llm.provider"
OI_LLM_SYSTEM: Final = "llm.system"
OI_TOKEN_COUNT_PROMPT: Final = "llm.token_count.prompt"
OI_TOKEN_COUNT_COMPLETION: Final = "llm.token_count.completion"
OI_TOKEN_COUNT_CACHE_READ: Final = "llm.token_count.prompt_details.cache_read"
OI_TOKEN_COUNT_CACHE_WRITE: Final = "llm.token_count.prompt_details.cache_write"
OI_TOKEN_COUNT_PROMPT_AUDIO: Final = "llm.token_count.prompt_details.audio"
OI_TOKEN_COUNT_REASONING: Final = "llm.token_count.completion_details.reasoning"
OI_TOKEN_COUNT_COMPLETION_AUDIO: Final = "llm.token_count.completion_details.audio"
OI_COST_TOTAL: Final = "llm.cost.total"
OI_INPUT_MESSAGES_PREFIX: Final = "llm.input_messages."
OI_OUTPUT_MESSAGES_PREFIX: Final = "llm.output_messages."

# PydanticAI / Logfire
PYDANTIC_USAGE_DETAILS_PREFIX: Final = "gen_ai.usage.details."
PYDANTIC_CACHE_READ_TOKENS: Final = "gen_ai.usage.details.cache_read_tokens"
PYDANTIC_CACHE_WRITE_TOKENS: Final = "gen_ai.usage.details.cache_write_tokens"
PYDANTIC_REASONING_TOKENS: Final = "gen_ai.usage.details.reasoning_tokens"
# PydanticAI before RequestUsage (0.x) copied the provider's raw usage into details.
PYDANTIC_LEGACY_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.details.cache_read_input_tokens"
PYDANTIC_LEGACY_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.details.cache_creation_input_tokens"
PYDANTIC_LEGACY_CACHED_TOKENS: Final = "gen_ai.usage.details.cached_tokens"
PYDANTIC_AGGREGATED_USAGE_PREFIX: Final = "gen_ai.aggregated_usage."
GEN_AI_AGGREGATED_USAGE_INPUT_TOKENS: Final = "gen_ai.aggregated_usage.input_tokens"
GEN_AI_AGGREGATED_USAGE_OUTPUT_TOKENS: Final = "gen_ai.aggregated_usage.output_tokens"
LOGFIRE_OPERATION_COST: Final = "operation.cost"

# Audio token counts have no OTel GenAI name yet; PydanticAI's detail names are the
# current names we read (and the ones OpenInference audio counts are normalised to).
GEN_AI_USAGE_INPUT_AUDIO_TOKENS: Final = "gen_ai.usage.details.input_audio_tokens"
GEN_AI_USAGE_OUTPUT_AUDIO_TOKENS: Final = "gen_ai.usage.details.output_audio_tokens"
GEN_AI_USAGE_CACHE_AUDIO_READ_TOKENS: Final = "gen_ai.usage.details.cache_audio_read_tokens"
