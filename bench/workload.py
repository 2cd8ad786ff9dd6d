"""Seeded generator of realistic GenAI OTLP requests (traces, metrics, logs).

The traces follow the OpenTelemetry GenAI semantic conventions: agent runs
(``invoke_agent``) over model calls (``chat``, ``generate_content``, ``embeddings``) and
tool executions (``execute_tool``), sometimes under an HTTP server span, across
OpenAI, Anthropic, Google Gemini, Mistral, AWS Bedrock and Azure OpenAI models. Model
calls carry token usage (cache read/creation and reasoning tokens as subsets of
input/output, per the conventions), ``gen_ai.input.messages`` / ``gen_ai.output.messages``
as JSON strings of realistic length, tool call arguments and results. A small share
of calls fail (``error.type``, status Error, an ``exception`` event), and a configurable
fraction of model calls have prompts containing PII (emails, phone numbers,
Luhn-valid card numbers, IBANs, API keys); the tool calls that follow such a prompt
carry the PII in their arguments too.

Everything is drawn from one ``random.Random(seed)``: the same seed and
``start_time_ns`` give byte-identical requests. With ``start_time_ns=None`` the spans
start at the current time (content and ids stay the same, only timestamps move).

CLI: ``python -m bench.workload --out DIR`` writes pre-encoded request bodies for
load drivers: ``traces.pb`` (protobuf), ``traces.json`` (OTLP JSON), ``traces.grpc``
(one gRPC length-prefixed message frame, for h2load), and ``metrics.*`` / ``logs.*``.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import random
import string
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson
import phonenumbers
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from semconv import attributes as sc

# --- Names the GenAI / general semantic conventions define that semconv/ does not list
# (semconv/ is owned by the genai_cost helper; these are only written by this generator).
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_REQUEST_ENCODING_FORMATS = "gen_ai.request.encoding_formats"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_OUTPUT_TYPE = "gen_ai.output.type"
GEN_AI_EMBEDDINGS_DIMENSION_COUNT = "gen_ai.embeddings.dimension.count"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
GEN_AI_TOOL_DESCRIPTION = "gen_ai.tool.description"
GEN_AI_DATA_SOURCE_ID = "gen_ai.data_source.id"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
SERVICE_VERSION = "service.version"
DEPLOYMENT_ENVIRONMENT_NAME = "deployment.environment.name"
TELEMETRY_SDK_NAME = "telemetry.sdk.name"
TELEMETRY_SDK_LANGUAGE = "telemetry.sdk.language"
TELEMETRY_SDK_VERSION = "telemetry.sdk.version"
HOST_NAME = "host.name"
K8S_NAMESPACE_NAME = "k8s.namespace.name"
K8S_POD_NAME = "k8s.pod.name"
CLOUD_PROVIDER = "cloud.provider"
CLOUD_REGION = "cloud.region"
HTTP_REQUEST_METHOD = "http.request.method"
HTTP_ROUTE = "http.route"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
URL_PATH = "url.path"
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
EVENT_INFERENCE_DETAILS = "gen_ai.client.inference.operation.details"
METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"
TOKEN_TYPE_INPUT = "input"
TOKEN_TYPE_OUTPUT = "output"

# Histogram bucket boundaries the GenAI metric conventions advise.
TOKEN_USAGE_BUCKETS = [
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
]
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]

# gen_ai.provider.name values of the conventions' well-known list.
PROVIDER_OPENAI = "openai"
PROVIDER_ANTHROPIC = "anthropic"
PROVIDER_GEMINI = "gcp.gemini"
PROVIDER_MISTRAL = "mistral_ai"
PROVIDER_BEDROCK = "aws.bedrock"
PROVIDER_AZURE_OPENAI = "azure.ai.openai"

MS = 1_000_000  # nanoseconds


@dataclass(frozen=True, slots=True)
class Model:
    provider: str
    request_model: str
    response_model: str
    operation: str
    server: str
    tokens_per_s: float
    reasoning: bool = False
    cache_writes: bool = False  # the API reports cache creation tokens (Anthropic style)
    caches: bool = True
    max_tokens: int = 4096


@dataclass(frozen=True, slots=True)
class EmbeddingModel:
    provider: str
    request_model: str
    server: str
    dimensions: int


_OPENAI = "api.openai.com"
_ANTHROPIC = "api.anthropic.com"
_GEMINI = "generativelanguage.googleapis.com"
_MISTRAL = "api.mistral.ai"
_BEDROCK = "bedrock-runtime.us-east-1.amazonaws.com"
_AZURE = "contoso-prod.openai.azure.com"

CHAT_MODELS: dict[str, list[tuple[Model, float]]] = {
    PROVIDER_OPENAI: [
        (Model(PROVIDER_OPENAI, "gpt-4o", "gpt-4o-2024-08-06", sc.OP_CHAT, _OPENAI, 70), 0.30),
        (Model(PROVIDER_OPENAI, "gpt-4o-mini", "gpt-4o-mini-2024-07-18", sc.OP_CHAT, _OPENAI, 110), 0.35),
        (
            Model(
                PROVIDER_OPENAI,
                "o3-mini",
                "o3-mini-2025-01-31",
                sc.OP_CHAT,
                _OPENAI,
                150,
                reasoning=True,
                max_tokens=16384,
            ),
            0.10,
        ),
        (Model(PROVIDER_OPENAI, "gpt-4.1", "gpt-4.1-2025-04-14", sc.OP_CHAT, _OPENAI, 75), 0.12),
        (Model(PROVIDER_OPENAI, "gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", sc.OP_CHAT, _OPENAI, 100), 0.10),
        (
            Model(
                PROVIDER_OPENAI,
                "o1",
                "o1-2024-12-17",
                sc.OP_CHAT,
                _OPENAI,
                90,
                reasoning=True,
                max_tokens=32768,
            ),
            0.03,
        ),
    ],
    PROVIDER_ANTHROPIC: [
        (
            Model(
                PROVIDER_ANTHROPIC,
                "claude-3-5-sonnet-20241022",
                "claude-3-5-sonnet-20241022",
                sc.OP_CHAT,
                _ANTHROPIC,
                60,
                cache_writes=True,
            ),
            0.30,
        ),
        (
            Model(
                PROVIDER_ANTHROPIC,
                "claude-sonnet-4-20250514",
                "claude-sonnet-4-20250514",
                sc.OP_CHAT,
                _ANTHROPIC,
                65,
                reasoning=True,
                cache_writes=True,
                max_tokens=8192,
            ),
            0.35,
        ),
        (
            Model(
                PROVIDER_ANTHROPIC,
                "claude-3-5-haiku-20241022",
                "claude-3-5-haiku-20241022",
                sc.OP_CHAT,
                _ANTHROPIC,
                90,
                cache_writes=True,
            ),
            0.20,
        ),
        (
            Model(
                PROVIDER_ANTHROPIC,
                "claude-3-7-sonnet-20250219",
                "claude-3-7-sonnet-20250219",
                sc.OP_CHAT,
                _ANTHROPIC,
                60,
                reasoning=True,
                cache_writes=True,
                max_tokens=8192,
            ),
            0.10,
        ),
        (
            Model(
                PROVIDER_ANTHROPIC,
                "claude-opus-4-20250514",
                "claude-opus-4-20250514",
                sc.OP_CHAT,
                _ANTHROPIC,
                35,
                reasoning=True,
                cache_writes=True,
            ),
            0.05,
        ),
    ],
    PROVIDER_GEMINI: [
        (
            Model(
                PROVIDER_GEMINI,
                "gemini-2.0-flash",
                "gemini-2.0-flash-001",
                sc.OP_GENERATE_CONTENT,
                _GEMINI,
                160,
            ),
            0.50,
        ),
        (
            Model(
                PROVIDER_GEMINI,
                "gemini-2.0-flash-lite",
                "gemini-2.0-flash-lite-001",
                sc.OP_GENERATE_CONTENT,
                _GEMINI,
                200,
            ),
            0.15,
        ),
        (
            Model(
                PROVIDER_GEMINI,
                "gemini-2.5-pro",
                "gemini-2.5-pro",
                sc.OP_GENERATE_CONTENT,
                _GEMINI,
                80,
                reasoning=True,
                max_tokens=65536,
            ),
            0.20,
        ),
        (
            Model(
                PROVIDER_GEMINI,
                "gemini-1.5-pro",
                "gemini-1.5-pro-002",
                sc.OP_GENERATE_CONTENT,
                _GEMINI,
                60,
                caches=False,
            ),
            0.15,
        ),
    ],
    PROVIDER_MISTRAL: [
        (
            Model(
                PROVIDER_MISTRAL,
                "mistral-large-latest",
                "mistral-large-2411",
                sc.OP_CHAT,
                _MISTRAL,
                45,
                caches=False,
            ),
            0.45,
        ),
        (
            Model(
                PROVIDER_MISTRAL,
                "mistral-small-latest",
                "mistral-small-2503",
                sc.OP_CHAT,
                _MISTRAL,
                120,
                caches=False,
            ),
            0.40,
        ),
        (
            Model(
                PROVIDER_MISTRAL,
                "codestral-latest",
                "codestral-2501",
                sc.OP_CHAT,
                _MISTRAL,
                110,
                caches=False,
            ),
            0.15,
        ),
    ],
    PROVIDER_BEDROCK: [
        (
            Model(
                PROVIDER_BEDROCK,
                "anthropic.claude-3-5-sonnet-20240620-v1:0",
                "anthropic.claude-3-5-sonnet-20240620-v1:0",
                sc.OP_CHAT,
                _BEDROCK,
                55,
                cache_writes=True,
            ),
            0.45,
        ),
        (
            Model(
                PROVIDER_BEDROCK,
                "amazon.nova-pro-v1:0",
                "amazon.nova-pro-v1:0",
                sc.OP_CHAT,
                _BEDROCK,
                90,
                caches=False,
            ),
            0.30,
        ),
        (
            Model(
                PROVIDER_BEDROCK,
                "meta.llama3-1-70b-instruct-v1:0",
                "meta.llama3-1-70b-instruct-v1:0",
                sc.OP_CHAT,
                _BEDROCK,
                50,
                caches=False,
                max_tokens=2048,
            ),
            0.25,
        ),
    ],
    PROVIDER_AZURE_OPENAI: [
        (Model(PROVIDER_AZURE_OPENAI, "gpt-4o", "gpt-4o-2024-11-20", sc.OP_CHAT, _AZURE, 65), 0.6),
        (Model(PROVIDER_AZURE_OPENAI, "gpt-4o-mini", "gpt-4o-mini-2024-07-18", sc.OP_CHAT, _AZURE, 100), 0.4),
    ],
}

EMBEDDING_MODELS: dict[str, EmbeddingModel] = {
    PROVIDER_OPENAI: EmbeddingModel(PROVIDER_OPENAI, "text-embedding-3-small", _OPENAI, 1536),
    PROVIDER_ANTHROPIC: EmbeddingModel(PROVIDER_OPENAI, "text-embedding-3-large", _OPENAI, 3072),
    PROVIDER_GEMINI: EmbeddingModel(PROVIDER_GEMINI, "text-embedding-004", _GEMINI, 768),
    PROVIDER_MISTRAL: EmbeddingModel(PROVIDER_MISTRAL, "mistral-embed", _MISTRAL, 1024),
    PROVIDER_BEDROCK: EmbeddingModel(PROVIDER_BEDROCK, "amazon.titan-embed-text-v2:0", _BEDROCK, 1024),
    PROVIDER_AZURE_OPENAI: EmbeddingModel(PROVIDER_AZURE_OPENAI, "text-embedding-3-small", _AZURE, 1536),
}

# Instrumentation scope of the model-call spans, by provider.
PROVIDER_SCOPES: dict[str, tuple[str, str]] = {
    PROVIDER_OPENAI: ("opentelemetry.instrumentation.openai_v2", "2.1b0"),
    PROVIDER_ANTHROPIC: ("opentelemetry.instrumentation.anthropic", "0.40.2"),
    PROVIDER_GEMINI: ("opentelemetry.instrumentation.google_genai", "0.2b0"),
    PROVIDER_MISTRAL: ("opentelemetry.instrumentation.mistralai", "0.40.2"),
    PROVIDER_BEDROCK: ("opentelemetry.instrumentation.botocore.bedrock-runtime", "0.54b1"),
    PROVIDER_AZURE_OPENAI: ("azure.ai.inference", "1.0.0b9"),
}

ERRORS: dict[str, list[tuple[str, str]]] = {
    PROVIDER_OPENAI: [
        ("openai.RateLimitError", "Rate limit reached for gpt-4o in organization on tokens per min"),
        ("openai.APITimeoutError", "Request timed out."),
        ("500", "The server had an error while processing your request."),
    ],
    PROVIDER_ANTHROPIC: [
        ("anthropic.OverloadedError", "Overloaded"),
        ("anthropic.RateLimitError", "Number of request tokens has exceeded your per-minute rate limit"),
        ("timeout", "Request timed out after 600s"),
    ],
    PROVIDER_GEMINI: [
        ("429", "Resource has been exhausted (e.g. check quota)."),
        ("503", "The model is overloaded. Please try again later."),
    ],
    PROVIDER_MISTRAL: [("429", "Requests rate limit exceeded"), ("500", "Internal server error")],
    PROVIDER_BEDROCK: [
        ("ThrottlingException", "Too many requests, please wait before trying again."),
        ("ModelTimeoutException", "Model has timed out in processing the request."),
    ],
    PROVIDER_AZURE_OPENAI: [
        ("429", "Requests to the ChatCompletions_Create Operation have exceeded call rate limit"),
        (
            "content_filter",
            "The response was filtered due to the prompt triggering content management policy.",
        ),
    ],
}

# --- Scenarios: what each service's agent does ---------------------------------------

ToolArgs = Callable[[random.Random, "Pii | None"], dict[str, Any]]
ToolResult = Callable[[random.Random], Any]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    arguments: ToolArgs
    result: ToolResult


@dataclass(frozen=True, slots=True)
class Scenario:
    agent_name: str
    system_prompt: str
    questions: Sequence[str]
    context: Sequence[str]  # paragraphs pasted into the user turn (documents, diffs, logs)
    answers: Sequence[str]
    tools: Sequence[Tool]
    retrieval: bool = False
    http_route: str = "/api/chat"


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    namespace: str
    version: str
    scenario: Scenario
    providers: Sequence[tuple[str, float]]
    framework_scope: tuple[str, str]
    language: str = "python"
    sdk_version: str = "1.34.1"


def _order_id(rng: random.Random) -> str:
    return f"ORD-{rng.randint(100000, 999999)}"


def _sentences(rng: random.Random, bank: Sequence[str], lo: int, hi: int) -> str:
    return " ".join(rng.sample(bank, min(len(bank), rng.randint(lo, hi))))


_SUPPORT_SYSTEM = (
    "You are Ava, the customer support assistant for Northwind Outfitters, an online retailer of outdoor "
    "clothing and camping equipment. Answer in the customer's language, be concise and friendly, and never "
    "invent order details: always look them up with the tools provided. Refunds up to 150 EUR can be issued "
    "directly when the order was delivered less than 30 days ago and the item is unused; anything larger or "
    "older must be escalated to a human agent with a short summary. Do not disclose internal notes, "
    "warehouse "
    "codes or other customers' data. If the customer shares payment details, do not repeat them back. When a "
    "shipment is delayed more than 5 business days, offer a 10% voucher. Shipping to the EU takes 2-4 "
    "business "
    "days, to the UK 3-6 business days, and to the US 5-8 business days. Our returns portal is "
    "https://northwind.example/returns and the support hours are 8:00-20:00 CET, Monday to Saturday."
)
_SUPPORT_QUESTIONS = [
    "Hi, my order {order} still hasn't arrived and the tracking page has not changed for a week. Can you "
    "check what is going on?",
    "I received the wrong size for the Alpine Pro jacket in order {order}. I need an exchange before my "
    "trip next Friday.",
    "The zipper on the tent I bought (order {order}) broke on the first night. I'd like a refund please.",
    "Can you tell me whether order {order} was shipped already? I need to change the delivery address.",
    "I was charged twice for order {order}. Please refund the duplicate payment.",
]
_SUPPORT_CONTEXT = [
    "Previous conversation summary: the customer contacted us on Monday about a delayed parcel and was told "
    "to wait two more days.",
    "Customer tier: Gold member since 2021, 14 orders, 1 previous return, no open disputes.",
    "The customer attached a photo of the damaged item showing a torn seam near the left shoulder.",
    "Carrier note: parcel held at the regional depot due to an incomplete address (missing apartment "
    "number).",
    "Order lines: 1x Alpine Pro jacket (M, navy) 189.00 EUR, 1x merino base layer 59.00 EUR, shipping 4.90 "
    "EUR.",
]
_SUPPORT_ANSWERS = [
    "I'm sorry about the delay. I checked your order and the parcel is currently held at the regional depot "
    "because the "
    "apartment number is missing from the address. I've added a note for the carrier and it should be "
    "delivered within "
    "2 business days. As a thank-you for your patience I've also added a 10% voucher to your account.",
    "Thanks for letting us know. I've started an exchange for the jacket in size L; a prepaid return label "
    "has been sent "
    "to your email address. The new jacket ships as soon as the carrier scans the return, so it should "
    "arrive before Friday.",
    "I'm sorry the tent failed so quickly. Since the order was delivered 12 days ago, I've issued a full "
    "refund of 129.00 EUR "
    "to your original payment method. It usually appears on your statement within 3-5 business days.",
    "Your order has not left the warehouse yet, so I could update the delivery address for you. You'll "
    "receive an updated "
    "confirmation shortly. Is there anything else I can help you with today?",
]


def _support_tools() -> list[Tool]:
    return [
        Tool(
            "get_order_status",
            "Look up the status, items and shipment tracking of an order.",
            lambda r, p: {"order_id": _order_id(r)},
            lambda r: {
                "status": r.choice(["shipped", "processing", "delivered", "held_at_depot"]),
                "carrier": r.choice(["DHL", "UPS", "DPD"]),
                "tracking_number": f"1Z{r.randint(10**15, 10**16 - 1)}",
                "eta": f"2026-11-{r.randint(10, 28)}",
            },
        ),
        Tool(
            "lookup_customer",
            "Find a customer record by email address or phone number.",
            lambda r, p: {"email": p.email} if p else {"customer_id": f"C{r.randint(100000, 999999)}"},
            lambda r: {
                "customer_id": f"C{r.randint(100000, 999999)}",
                "tier": r.choice(["gold", "silver", "basic"]),
                "orders": r.randint(1, 40),
            },
        ),
        Tool(
            "create_refund",
            "Refund an order (or part of it) to the original payment method.",
            lambda r, p: {
                "order_id": _order_id(r),
                "amount_eur": round(r.uniform(10, 150), 2),
                "reason": r.choice(["damaged", "wrong_size", "duplicate_charge"]),
            },
            lambda r: {"refund_id": f"RF-{r.randint(10000, 99999)}", "status": "approved"},
        ),
        Tool(
            "search_help_center",
            "Search the help center articles.",
            lambda r, p: {
                "query": r.choice(["return policy", "exchange size", "shipping times UK"]),
                "top_k": 3,
            },
            lambda r: [{"title": "Returns and exchanges", "url": "https://northwind.example/help/returns"}],
        ),
    ]


_CODE_SYSTEM = (
    "You are a senior software engineer reviewing pull requests for a Python and TypeScript monorepo. Focus "
    "on "
    "correctness, security, concurrency and error handling first, then readability. Point to exact lines, "
    "explain "
    "why something is a problem and propose a concrete fix as a suggestion block. Do not comment on "
    "formatting: "
    "ruff and prettier run in CI. Flag any secret, token or credential committed in the diff as a blocking "
    "issue. "
    "Use the tools to read surrounding code or run the affected tests before you claim a bug. Keep the "
    "review "
    "under 10 comments, most important first, and finish with an overall verdict: approve, comment or "
    "request changes."
)
_CODE_QUESTIONS = [
    "Please review PR #{pr}: 'Add retry with backoff to the payment webhook handler'.",
    "Review PR #{pr} ('Cache user permissions in Redis'). The author is worried about invalidation.",
    "Can you look at PR #{pr}? It migrates the export job from threads to asyncio.",
]
_CODE_CONTEXT = [
    "diff --git a/services/payments/webhook.py b/services/payments/webhook.py\n@@ -41,12 +41,24 @@ async "
    "def handle(event):\n"
    "-    resp = await client.post(url, json=payload)\n+    for attempt in range(5):\n+        try:\n"
    "+            resp = await client.post(url, json=payload, timeout=10)\n+            break\n+        "
    "except httpx.TransportError:\n"
    "+            await asyncio.sleep(2 ** attempt)\n",
    "diff --git a/app/auth/permissions.py b/app/auth/permissions.py\n@@ -10,6 +10,18 @@\n+CACHE_TTL = "
    "3600\n+\n"
    "+def permissions_for(user_id: int) -> set[str]:\n+    key = f'perm:{user_id}'\n+    cached = "
    "redis.get(key)\n"
    "+    if cached:\n+        return set(json.loads(cached))\n+    perms = db.load_permissions(user_id)\n"
    "+    redis.set(key, json.dumps(sorted(perms)), ex=CACHE_TTL)\n+    return perms\n",
    "diff --git a/jobs/export.py b/jobs/export.py\n@@ -88,9 +88,15 @@ class ExportJob:\n"
    "-        with ThreadPoolExecutor(8) as pool:\n-            list(pool.map(self.write_chunk, chunks))\n"
    "+        sem = asyncio.Semaphore(8)\n+        async def run(chunk):\n+            async with sem:\n"
    "+                await self.write_chunk(chunk)\n+        await asyncio.gather(*(run(c) for c in "
    "chunks))\n",
]
_CODE_ANSWERS = [
    "**Request changes.** 1) `webhook.py:47`: the loop swallows the last exception: if all 5 attempts fail, "
    "`resp` is "
    "unbound and the next line raises `UnboundLocalError`. Re-raise after the loop. 2) Retrying a POST is "
    "only safe if "
    "the receiver deduplicates: pass the event id as an `Idempotency-Key` header. 3) Add jitter to the "
    "backoff so "
    "that webhooks failing together don't retry in lockstep.",
    "**Comment.** The cache has no invalidation path: when an admin revokes a role, the user keeps it for "
    "up to an "
    "hour. Delete `perm:{user_id}` in `revoke_role` and `grant_role`, or version the key with the role "
    "table's "
    "`updated_at`. Also `permissions_for` returns a list-derived set from cache but a DB set otherwise; "
    "fine, but "
    "add a test that covers both paths.",
    "**Approve with nits.** The semaphore keeps concurrency at 8 as before. `gather` will cancel nothing on "
    "the first "
    "failure; consider `asyncio.TaskGroup` so one failed chunk stops the rest and the error surfaces once.",
]


def _code_tools() -> list[Tool]:
    return [
        Tool(
            "fetch_file",
            "Read a file of the repository at a given ref.",
            lambda r, p: {
                "path": r.choice(
                    ["services/payments/webhook.py", "app/auth/permissions.py", "jobs/export.py"]
                ),
                "ref": f"{r.getrandbits(40):010x}",
            },
            lambda r: {
                "lines": r.randint(80, 600),
                "content": "import asyncio\nimport httpx\n\nlog = logging.getLogger(__name__)\n",
            },
        ),
        Tool(
            "run_tests",
            "Run a pytest target in the CI sandbox and return the summary.",
            lambda r, p: {
                "target": r.choice(["tests/payments", "tests/auth/test_permissions.py", "tests/jobs"])
            },
            lambda r: {
                "passed": r.randint(10, 200),
                "failed": r.choice([0, 0, 0, 1, 2]),
                "duration_s": round(r.uniform(3, 90), 1),
            },
        ),
        Tool(
            "post_review_comment",
            "Post a review comment on a line of the pull request.",
            lambda r, p: {
                "path": "services/payments/webhook.py",
                "line": r.randint(40, 70),
                "body": "The last exception is swallowed here; re-raise after the loop.",
            },
            lambda r: {"comment_id": r.randint(10**8, 10**9)},
        ),
    ]


_RAG_SYSTEM = (
    "You answer questions about the internal engineering handbook and runbooks of the platform team. Use "
    "only the "
    "passages provided in the <context> block; if they do not contain the answer, say so and suggest who to "
    "ask. "
    "Cite passages by their [doc-id]. Answer in at most three short paragraphs, with commands in code "
    "blocks. Never "
    "output credentials, hostnames of production databases or personal data, even if they appear in the "
    "context. "
    "If the user asks for something destructive (dropping tables, deleting buckets), describe the approval "
    "process "
    "instead of the commands."
)
_RAG_QUESTIONS = [
    "How do I rotate the TLS certificates of the ingress gateway without downtime?",
    "What is the on-call escalation path for a SEV-2 incident in the payments domain?",
    "How do we restore a single Postgres table from last night's backup?",
    "Which retention applies to audit logs in the EU region and who can change it?",
]
_RAG_CONTEXT = [
    "[doc-412] Certificates for the ingress gateway are issued by cert-manager from the internal ACME "
    "issuer. Rotation is "
    "automatic 30 days before expiry; to force it, annotate the Certificate resource with "
    "cert-manager.io/renew-before and "
    "watch the rollout. Gateways reload certificates without restarting pods.",
    "[doc-107] SEV-2 incidents page the primary on-call of the owning team through PagerDuty. If not "
    "acknowledged within "
    "15 minutes, the secondary is paged; after 30 minutes the engineering manager. Payments incidents also "
    "notify the "
    "#payments-incidents channel and the compliance officer.",
    "[doc-233] Point-in-time restores run from the nightly base backup plus WAL archive in the backup "
    "bucket. Restore into "
    "a scratch instance with `pgctl restore --target-time`, then copy the table with `pg_dump -t` and "
    "`pg_restore`. "
    "Never restore directly into production.",
    "[doc-518] Audit logs in eu-west-1 are retained for 400 days (regulatory minimum 365). Changes to "
    "retention require a "
    "change request approved by the data protection officer and are applied through the logging Terraform "
    "module.",
    "[doc-090] Service owners are listed in the catalog; when in doubt ask in #platform-help during "
    "business hours.",
]
_RAG_ANSWERS = [
    "Rotation is automatic 30 days before expiry [doc-412]. To force it now, set the "
    "`cert-manager.io/renew-before` "
    "annotation on the gateway's Certificate and watch `kubectl get certificate -w`; the gateways reload "
    "the new "
    "certificate without restarting, so there is no downtime.",
    "For a SEV-2 in payments, PagerDuty pages the owning team's primary on-call, then the secondary after "
    "15 minutes and "
    "the engineering manager after 30 [doc-107]. Also post in #payments-incidents; the compliance officer "
    "is notified "
    "automatically.",
    "Restore into a scratch instance, never production [doc-233]: run `pgctl restore --target-time "
    "'2026-11-20 23:00'`, "
    "then `pg_dump -t orders` from the scratch instance and `pg_restore` into production under a change "
    "request.",
]


def _rag_tools() -> list[Tool]:
    return [
        Tool(
            "search_docs",
            "Semantic search over the handbook; returns the best matching passages.",
            lambda r, p: {
                "query": r.choice(["tls rotation ingress", "sev-2 escalation", "postgres table restore"]),
                "top_k": r.choice([3, 5, 8]),
            },
            lambda r: [
                {"doc_id": f"doc-{r.randint(1, 600)}", "score": round(r.uniform(0.6, 0.95), 3)}
                for _ in range(3)
            ],
        ),
    ]


_SALES_SYSTEM = (
    "You are the sales copilot in our CRM. You help account executives prepare calls, summarise account "
    "activity and "
    "draft follow-up emails. Use the CRM tools for every fact about accounts, contacts and opportunities. "
    "Emails must be "
    "short (under 150 words), specific to the account and end with one clear next step. Never promise "
    "discounts above "
    "15% or delivery dates; suggest involving the deal desk instead. Respect opt-outs: if a contact has "
    "do_not_email set, "
    "say so and do not draft the email. Write in the language of the account's country unless asked "
    "otherwise."
)
_SALES_QUESTIONS = [
    "Prepare me for tomorrow's renewal call with {company}. What changed since the last QBR?",
    "Draft a follow-up email to the CTO of {company} after today's demo of the analytics add-on.",
    "Which open opportunities at {company} are at risk this quarter and why?",
]
_SALES_CONTEXT = [
    "Notes from the demo: they liked the anomaly dashboards, concerns about SSO setup time and data "
    "residency in the EU.",
    "Last QBR: usage up 34% quarter over quarter, 2 support escalations about export latency, champion "
    "moved to a new role.",
    "Competitor mentioned: they are evaluating a cheaper tool for the marketing team only.",
]
_SALES_ANSWERS = [
    "Since the last QBR, usage grew 34% and both export-latency escalations were resolved in v4.2. Your "
    "champion moved "
    "to a new role, so confirm the new economic buyer early in the call. The renewal is worth 84k EUR ARR "
    "with an "
    "upsell opportunity for 40 analytics seats.",
    "Subject: Next steps after today's analytics demo\n\nHi Dana, thanks for the time today. You asked "
    "about SSO setup "
    "and EU data residency: SSO takes under a day with your IdP, and all data stays in Frankfurt. Could we "
    "schedule a "
    "30-minute technical session with your security team next week?",
]
_COMPANIES = [
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Logistics",
    "Wayne Analytics",
    "Hooli Cloud",
    "Vandelay Imports",
    "Soylent Foods",
]


def _sales_tools() -> list[Tool]:
    return [
        Tool(
            "get_account",
            "Fetch an account with its contacts, ARR and open opportunities.",
            lambda r, p: {"account_name": r.choice(_COMPANIES)},
            lambda r: {
                "account_id": f"001{r.getrandbits(48):012X}",
                "arr_eur": r.randint(10, 500) * 1000,
                "open_opportunities": r.randint(0, 5),
            },
        ),
        Tool(
            "list_activities",
            "List recent activities (calls, emails, meetings) of an account.",
            lambda r, p: {"account_id": f"001{r.getrandbits(48):012X}", "days": 90},
            lambda r: [
                {"type": r.choice(["call", "email", "meeting"]), "days_ago": r.randint(1, 90)}
                for _ in range(r.randint(2, 6))
            ],
        ),
        Tool(
            "draft_email",
            "Save an email draft in the CRM for the account executive to review.",
            lambda r, p: {
                "to": p.email if p else f"cto@{r.choice(_COMPANIES).split()[0].lower()}.example",
                "subject": "Next steps after today's demo",
            },
            lambda r: {"draft_id": f"DR-{r.randint(1000, 9999)}"},
        ),
    ]


_SUMMARY_SYSTEM = (
    "Summarise the document for a busy executive. Output: a one-sentence headline, then at most five bullet "
    "points "
    "with the key facts and numbers, then a 'Risks' line and an 'Actions' line. Keep every number exactly "
    "as in the "
    "source; do not round. If the document is a contract, list parties, term, renewal and termination "
    "conditions and "
    "any liability caps. If personal data appears in the document, do not reproduce it in the summary; "
    "refer to people "
    "by role. Write in English regardless of the source language."
)
_SUMMARY_QUESTIONS = [
    "Summarise the attached document.",
    "Give me the executive summary of this report.",
    "What are the key points and risks in this contract?",
]
_SUMMARY_CONTEXT = [
    "Quarterly operations report Q3: revenue 12.4M EUR (+8.1% QoQ), gross margin 61.2%, churn 2.3% monthly "
    "in the SMB "
    "segment. Headcount grew from 182 to 197. The data-center migration slipped by six weeks because of a "
    "hardware "
    "delivery delay; the team expects completion in mid-December.",
    "Master services agreement between the Provider and the Customer, initial term 36 months, automatic "
    "renewal for 12 "
    "months unless terminated with 90 days' notice. Liability is capped at the fees paid in the preceding "
    "12 months, "
    "except for breaches of confidentiality and data protection obligations.",
    "Customer survey results: 1,204 responses, NPS 41 (up from 33). Top requests: better exports, SSO for "
    "all plans, "
    "faster support response on weekends. 18% of respondents mentioned pricing as a concern.",
    "Incident post-mortem: on 14 November a misconfigured feature flag disabled rate limiting for 47 "
    "minutes, causing "
    "elevated error rates (peak 7.4%) for API customers in the US region. No data was lost.",
]
_SUMMARY_ANSWERS = [
    "Headline: Q3 revenue grew 8.1% to 12.4M EUR while margins held at 61.2%.\n- SMB churn at 2.3% monthly "
    "remains the "
    "main drag.\n- Headcount 182 -> 197.\n- Data-center migration six weeks late (hardware "
    "delivery).\nRisks: SMB churn, "
    "migration slip.\nActions: retention program for SMB; confirm hardware dates.",
    "Headline: 36-month MSA with 12-month auto-renewal and 90-day termination notice.\n- Liability capped "
    "at 12 months of "
    "fees.\n- Carve-outs: confidentiality and data protection.\nRisks: uncapped data protection "
    "exposure.\nActions: "
    "review DPA and insurance coverage.",
]

_TRIAGE_SYSTEM = (
    "You are the incident triage assistant of the SRE team. Given an alert and log excerpts, classify "
    "severity "
    "(SEV-1..SEV-4), identify the most likely failing component, and propose the first three diagnostic "
    "steps. Query "
    "logs and metrics with the tools before concluding. Page on-call only for SEV-1 or SEV-2 and include a "
    "one-line "
    "summary in the page. Never paste secrets or customer identifiers from logs into pages or tickets; mask "
    "them."
)
_TRIAGE_QUESTIONS = ["Alert fired: {alert}. Please triage.", "New alert: {alert}. Is this customer-facing?"]
_TRIAGE_ALERTS = [
    "HighErrorRate checkout-api 5xx > 5% for 10m",
    "KafkaConsumerLag orders-consumer lag > 200k",
    "PodCrashLooping payments-worker in prod-eu",
    "LatencySLOBurn search-api p99 > 2s",
]
_TRIAGE_CONTEXT = [
    "2026-11-21T09:12:03Z ERROR checkout-api request failed: upstream connect error or disconnect/reset "
    "before headers. "
    "reset reason: connection timeout (upstream=payments:8443)",
    "2026-11-21T09:12:04Z WARN payments-worker pool exhausted: 50/50 connections in use, waiting 5000ms",
    "2026-11-21T09:12:09Z ERROR payments-worker psycopg.OperationalError: connection to server at 10.2.3.4 "
    "port 5432 "
    "failed: FATAL: remaining connection slots are reserved",
    "2026-11-21T09:11:58Z INFO deploy payments-worker rolled out v2026.11.21-1 (replicas 6 -> 12)",
]
_TRIAGE_ANSWERS = [
    "SEV-2. Checkout 5xx come from timeouts to payments, whose workers cannot get Postgres connections: the "
    "09:11 "
    "rollout doubled replicas to 12 with 50 connections each, exceeding max_connections. Steps: 1) scale "
    "payments-worker "
    "back to 6; 2) confirm connection count on the primary; 3) add pgbouncer limits before re-scaling. "
    "Paging payments on-call.",
    "SEV-3, not customer-facing yet: consumer lag grows since a partition rebalance at 09:05. Steps: check "
    "consumer "
    "group state, look for a stuck partition, restart the slowest consumer.",
]


def _triage_tools() -> list[Tool]:
    return [
        Tool(
            "query_logs",
            "Run a log query over the last N minutes for a service.",
            lambda r, p: {
                "service": r.choice(["checkout-api", "payments-worker", "orders-consumer"]),
                "query": "level:ERROR",
                "minutes": r.choice([15, 30, 60]),
            },
            lambda r: {
                "matches": r.randint(0, 5000),
                "top_message": "connection timeout (upstream=payments:8443)",
            },
        ),
        Tool(
            "query_metrics",
            "Evaluate a PromQL expression.",
            lambda r, p: {"expr": 'sum(rate(http_requests_total{code=~"5.."}[5m])) by (service)'},
            lambda r: {"series": r.randint(1, 8), "max": round(r.uniform(0.01, 0.2), 4)},
        ),
        Tool(
            "page_oncall",
            "Page the on-call engineer of a team.",
            lambda r, p: {
                "team": r.choice(["payments", "checkout", "platform"]),
                "severity": "SEV-2",
                "summary": "Checkout 5xx from payments DB connection exhaustion",
            },
            lambda r: {"incident_id": f"PD{r.randint(100000, 999999)}"},
        ),
    ]


SCENARIOS: dict[str, Scenario] = {
    "support": Scenario(
        "SupportAgent",
        _SUPPORT_SYSTEM,
        _SUPPORT_QUESTIONS,
        _SUPPORT_CONTEXT,
        _SUPPORT_ANSWERS,
        _support_tools(),
        http_route="/api/support/chat",
    ),
    "code_review": Scenario(
        "ReviewAgent",
        _CODE_SYSTEM,
        _CODE_QUESTIONS,
        _CODE_CONTEXT,
        _CODE_ANSWERS,
        _code_tools(),
        http_route="/webhooks/github",
    ),
    "rag": Scenario(
        "DocsQA",
        _RAG_SYSTEM,
        _RAG_QUESTIONS,
        _RAG_CONTEXT,
        _RAG_ANSWERS,
        _rag_tools(),
        retrieval=True,
        http_route="/api/ask",
    ),
    "sales": Scenario(
        "SalesCopilot",
        _SALES_SYSTEM,
        _SALES_QUESTIONS,
        _SALES_CONTEXT,
        _SALES_ANSWERS,
        _sales_tools(),
        http_route="/api/copilot",
    ),
    "summary": Scenario(
        "Summarizer",
        _SUMMARY_SYSTEM,
        _SUMMARY_QUESTIONS,
        _SUMMARY_CONTEXT,
        _SUMMARY_ANSWERS,
        [],
        http_route="/api/summarize",
    ),
    "triage": Scenario(
        "IncidentTriage",
        _TRIAGE_SYSTEM,
        _TRIAGE_QUESTIONS,
        _TRIAGE_CONTEXT,
        _TRIAGE_ANSWERS,
        _triage_tools(),
        http_route="/alerts/webhook",
    ),
}

SERVICES: list[tuple[Service, float]] = [
    (
        Service(
            "support-agent",
            "customer",
            "2.14.0",
            SCENARIOS["support"],
            [(PROVIDER_OPENAI, 0.6), (PROVIDER_ANTHROPIC, 0.3), (PROVIDER_AZURE_OPENAI, 0.1)],
            ("pydantic-ai", "0.4.2"),
        ),
        0.30,
    ),
    (
        Service(
            "code-review-bot",
            "devtools",
            "0.9.3",
            SCENARIOS["code_review"],
            [(PROVIDER_ANTHROPIC, 0.6), (PROVIDER_OPENAI, 0.3), (PROVIDER_MISTRAL, 0.1)],
            ("openinference.instrumentation.langchain", "0.1.43"),
        ),
        0.15,
    ),
    (
        Service(
            "rag-search-api",
            "knowledge",
            "1.3.7",
            SCENARIOS["rag"],
            [(PROVIDER_GEMINI, 0.5), (PROVIDER_OPENAI, 0.3), (PROVIDER_MISTRAL, 0.2)],
            ("openinference.instrumentation.llama_index", "4.2.1"),
        ),
        0.20,
    ),
    (
        Service(
            "sales-copilot",
            "revenue",
            "3.0.1",
            SCENARIOS["sales"],
            [(PROVIDER_AZURE_OPENAI, 0.5), (PROVIDER_OPENAI, 0.3), (PROVIDER_ANTHROPIC, 0.2)],
            ("@opentelemetry/instrumentation-openai-agents", "0.2.0"),
            language="nodejs",
            sdk_version="2.0.1",
        ),
        0.10,
    ),
    (
        Service(
            "doc-summarizer",
            "knowledge",
            "0.4.0",
            SCENARIOS["summary"],
            [(PROVIDER_BEDROCK, 0.6), (PROVIDER_GEMINI, 0.4)],
            ("opentelemetry.instrumentation.crewai", "0.40.2"),
        ),
        0.10,
    ),
    (
        Service(
            "triage-worker",
            "sre",
            "1.1.2",
            SCENARIOS["triage"],
            [(PROVIDER_ANTHROPIC, 0.4), (PROVIDER_BEDROCK, 0.3), (PROVIDER_OPENAI, 0.3)],
            ("pydantic-ai", "0.4.2"),
        ),
        0.15,
    ),
]

# --- PII values ----------------------------------------------------------------------

_FIRST = [
    "Anna",
    "Lukas",
    "Sofia",
    "James",
    "Chen",
    "Fatima",
    "Mateo",
    "Priya",
    "Olivia",
    "Noah",
    "Emma",
    "Yuki",
    "Omar",
    "Lena",
    "Marco",
    "Aisha",
]
_LAST = [
    "Schmidt",
    "Garcia",
    "Nguyen",
    "Smith",
    "Kowalski",
    "Rossi",
    "Haddad",
    "Patel",
    "Johansson",
    "Dubois",
    "Okafor",
    "Tanaka",
    "Fischer",
    "Martin",
]
_MAIL_DOMAINS = [
    "gmail.com",
    "outlook.com",
    "yahoo.co.uk",
    "web.de",
    "proton.me",
    "icloud.com",
    "acme-corp.com",
]
_B62 = string.ascii_letters + string.digits
_AWS_KEY_ALPHABET = string.ascii_uppercase + "234567"


def luhn_check_digit(payload: str) -> str:
    """Check digit making ``payload + digit`` pass the Luhn test (card numbers)."""
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    digits = [c for c in number if c.isdigit()]
    return len(digits) > 1 and luhn_check_digit("".join(digits[:-1])) == digits[-1]


def iban_check_digits(country: str, bban: str) -> str:
    """ISO 13616 check digits: mod-97 of the BBAN, country and '00' with letters as numbers."""
    rearranged = bban + country + "00"
    numeric = "".join(str(int(c, 36)) for c in rearranged)
    return f"{98 - int(numeric) % 97:02d}"


def iban_valid(iban: str) -> bool:
    compact = iban.replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


@dataclass(frozen=True, slots=True)
class Pii:
    """One person's worth of PII values; the generator embeds some of them in a prompt."""

    name: str
    email: str
    phone: str
    card: str
    iban: str
    api_key: str
    aws_key: str

    def values(self) -> dict[str, str]:
        return {
            "email": self.email,
            "phone": self.phone,
            "card": self.card,
            "iban": self.iban,
            "api_key": self.api_key,
            "aws_key": self.aws_key,
        }


def _phone(rng: random.Random) -> str:
    """A number libphonenumber accepts as valid (what a PII detector built on it finds)."""
    while True:
        candidate = _phone_candidate(rng)
        if phonenumbers.is_valid_number(phonenumbers.parse(candidate)):
            return candidate


def _phone_candidate(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        area = rng.choice([415, 212, 646, 312, 617])
        return f"+1 ({area}) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}"
    if kind == 1:
        return f"+44 20 7946 {rng.randint(0, 999):04d}"
    if kind == 2:
        return f"+49 30 {rng.randint(10_000_000, 99_999_999)}"
    pairs = " ".join(str(rng.randint(10, 99)) for _ in range(4))
    return f"+33 6 {pairs}"


def _api_key(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return "sk-proj-" + "".join(rng.choice(_B62) for _ in range(48))
    if kind == 1:
        return "sk-" + "".join(rng.choice(_B62) for _ in range(48))
    if kind == 2:
        return "sk-ant-api03-" + "".join(rng.choice(_B62 + "-_") for _ in range(93)) + "AA"
    return "ghp_" + "".join(rng.choice(_B62) for _ in range(36))


def make_pii(rng: random.Random) -> Pii:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    suffix = rng.choice(["", str(rng.randint(1, 99))])
    email = f"{first.lower()}.{last.lower()}{suffix}@{rng.choice(_MAIL_DOMAINS)}"
    phone = _phone(rng)
    prefix = rng.choice(["4", "51", "55", "37"])
    length = 15 if prefix == "37" else 16
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    digits = body + luhn_check_digit(body)
    card = rng.choice(
        [
            digits,
            " ".join(digits[i : i + 4] for i in range(0, len(digits), 4)),
            "-".join(digits[i : i + 4] for i in range(0, len(digits), 4)),
        ]
    )
    country, bban = rng.choice(
        [
            ("DE", "".join(rng.choice(string.digits) for _ in range(18))),
            ("GB", "NWBK" + "".join(rng.choice(string.digits) for _ in range(14))),
            ("FR", "".join(rng.choice(string.digits) for _ in range(23))),
            ("NL", "ABNA" + "".join(rng.choice(string.digits) for _ in range(10))),
        ]
    )
    iban_compact = country + iban_check_digits(country, bban) + bban
    iban = rng.choice(
        [iban_compact, " ".join(iban_compact[i : i + 4] for i in range(0, len(iban_compact), 4))]
    )
    api_key = _api_key(rng)
    aws_key = "AKIA" + "".join(rng.choice(_AWS_KEY_ALPHABET) for _ in range(16))
    return Pii(f"{first} {last}", email, phone, card, iban, api_key, aws_key)


_PII_SENTENCES: list[Callable[[Pii], str]] = [
    lambda p: f"My name is {p.name}, you can reach me at {p.email} or call {p.phone}.",
    lambda p: f"Please charge the remaining amount to my card {p.card} (exp 09/28).",
    lambda p: f"For the refund, use my bank account IBAN {p.iban}, account holder {p.name}.",
    lambda p: f"Here is the config that fails: OPENAI_API_KEY={p.api_key} and the request still returns 401.",
    lambda p: f"The deploy script uses aws_access_key_id = {p.aws_key}; is that why the upload is denied?",
    lambda p: f"Contact: {p.email}, mobile {p.phone}.",
]


# --- The generator -------------------------------------------------------------------


def _weighted(rng: random.Random, items: Sequence[tuple[Any, float]]) -> Any:
    total = sum(w for _, w in items)
    x = rng.random() * total
    for item, w in items:
        x -= w
        if x <= 0:
            return item
    return items[-1][0]


def _set_str(span: Any, key: str, value: str) -> None:
    kv = span.attributes.add()
    kv.key = key
    kv.value.string_value = value


def _set_int(span: Any, key: str, value: int) -> None:
    kv = span.attributes.add()
    kv.key = key
    kv.value.int_value = value


def _set_double(span: Any, key: str, value: float) -> None:
    kv = span.attributes.add()
    kv.key = key
    kv.value.double_value = value


def _set_str_array(span: Any, key: str, values: Sequence[str]) -> None:
    kv = span.attributes.add()
    kv.key = key
    arr = kv.value.array_value.values
    for v in values:
        arr.add().string_value = v


def _resource(service: Service, rng: random.Random) -> Resource:
    res = Resource()
    pod = f"{service.name}-{rng.getrandbits(32):08x}"[:40] + f"-{rng.getrandbits(20):05x}"
    for key, value in (
        (sc.SERVICE_NAME, service.name),
        (sc.SERVICE_NAMESPACE, service.namespace),
        (SERVICE_VERSION, service.version),
        (sc.SERVICE_INSTANCE_ID, f"{rng.getrandbits(128):032x}"),
        (DEPLOYMENT_ENVIRONMENT_NAME, "production"),
        (TELEMETRY_SDK_NAME, "opentelemetry"),
        (TELEMETRY_SDK_LANGUAGE, service.language),
        (TELEMETRY_SDK_VERSION, service.sdk_version),
        (HOST_NAME, pod),
        (K8S_NAMESPACE_NAME, service.namespace),
        (K8S_POD_NAME, pod),
        (CLOUD_PROVIDER, "aws"),
        (CLOUD_REGION, "eu-central-1"),
    ):
        _set_str(res, key, value)
    return res


@dataclass(slots=True)
class _Call:
    """What a simulated model call produced; the metrics and logs generators reuse it."""

    model: Model
    input_tokens: int
    output_tokens: int
    duration_ns: int
    error: str | None


class _Generator:
    def __init__(self, seed: int, pii_fraction: float, start_time_ns: int) -> None:
        if not 0.0 <= pii_fraction <= 1.0:
            raise ValueError("pii_fraction must be within [0, 1]")
        self.rng = random.Random(seed)
        self.pii_fraction = pii_fraction
        self.clock = start_time_ns
        # A handful of instances per service, as a fleet exporting to one receiver has.
        self.resources: dict[str, list[Resource]] = {
            svc.name: [_resource(svc, self.rng) for _ in range(3)] for svc, _ in SERVICES
        }
        self.error_rate = 0.02
        self.pii_pool = [make_pii(self.rng) for _ in range(64)]

    # ids -------------------------------------------------------------------------------
    def trace_id(self) -> bytes:
        return self.rng.getrandbits(128).to_bytes(16, "big")

    def span_id(self) -> bytes:
        return self.rng.getrandbits(64).to_bytes(8, "big")

    # traces ----------------------------------------------------------------------------
    def trace_request(self, spans_per_request: int) -> ExportTraceServiceRequest:
        rng = self.rng
        req = ExportTraceServiceRequest()
        # Most requests come straight from one SDK (one resource); some from a collector
        # that batched several services together.
        n_services = 1 if rng.random() < 0.7 else rng.randint(2, 3)
        services = [_weighted(rng, SERVICES) for _ in range(n_services)]
        scopes: dict[tuple[int, str], ScopeSpans] = {}
        resource_spans: list[ResourceSpans] = []
        for svc in services:
            rs = req.resource_spans.add()
            rs.resource.CopyFrom(rng.choice(self.resources[svc.name]))
            rs.schema_url = "https://opentelemetry.io/schemas/1.37.0"
            resource_spans.append(rs)

        def scope_for(idx: int, scope: tuple[str, str]) -> Any:
            key = (idx, scope[0])
            ss = scopes.get(key)
            if ss is None:
                ss = resource_spans[idx].scope_spans.add()
                ss.scope.name, ss.scope.version = scope
                scopes[key] = ss
            return ss.spans

        budget = spans_per_request
        while budget > 0:
            idx = rng.randrange(len(services))
            budget -= self._agent_run(services[idx], budget, functools.partial(scope_for, idx))
            self.clock += rng.randint(5, 60) * MS
        # Drop resources that got no spans (possible when the budget ran out early).
        for i in range(len(req.resource_spans) - 1, -1, -1):
            if not req.resource_spans[i].scope_spans:
                del req.resource_spans[i]
        return req

    def _agent_run(self, svc: Service, budget: int, scope_for: Callable[[tuple[str, str]], Any]) -> int:
        """Adds one agent run (at most ``budget`` spans); returns the number of spans added."""
        rng = self.rng
        scen = svc.scenario
        provider = _weighted(rng, svc.providers)
        model: Model = _weighted(rng, CHAT_MODELS[provider])
        trace_id = self.trace_id()
        conversation_id = f"conv_{rng.getrandbits(96):024x}"
        framework_spans = scope_for(svc.framework_scope)
        model_scope = PROVIDER_SCOPES[provider]
        t = self.clock
        used = 0

        http_span = None
        if rng.random() < 0.4 and budget - used > 1:
            http_span = framework_spans.add()
            http_span.trace_id = trace_id
            http_span.span_id = self.span_id()
            http_span.name = f"POST {scen.http_route}"
            http_span.kind = Span.SPAN_KIND_SERVER
            http_span.start_time_unix_nano = t
            _set_str(http_span, HTTP_REQUEST_METHOD, "POST")
            _set_str(http_span, HTTP_ROUTE, scen.http_route)
            _set_str(http_span, URL_PATH, scen.http_route)
            used += 1
            t += rng.randint(1, 5) * MS

        agent = framework_spans.add()
        agent.trace_id = trace_id
        agent.span_id = self.span_id()
        if http_span is not None:
            agent.parent_span_id = http_span.span_id
        agent.name = f"{sc.OP_INVOKE_AGENT} {scen.agent_name}"
        agent.kind = Span.SPAN_KIND_INTERNAL
        agent.start_time_unix_nano = t
        _set_str(agent, sc.GEN_AI_OPERATION_NAME, sc.OP_INVOKE_AGENT)
        _set_str(agent, sc.GEN_AI_PROVIDER_NAME, provider)
        _set_str(agent, sc.GEN_AI_AGENT_NAME, scen.agent_name)
        _set_str(agent, sc.GEN_AI_AGENT_ID, f"agent_{svc.name}")
        _set_str(agent, sc.GEN_AI_CONVERSATION_ID, conversation_id)
        _set_str(agent, sc.GEN_AI_REQUEST_MODEL, model.request_model)
        used += 1
        t += rng.randint(1, 8) * MS

        if scen.retrieval and budget - used > 0:
            emb = EMBEDDING_MODELS[provider]
            span = scope_for(PROVIDER_SCOPES[emb.provider]).add()
            dur = rng.randint(40, 250) * MS
            self._embeddings_span(span, trace_id, agent.span_id, emb, t, dur)
            used += 1
            t += dur + rng.randint(1, 10) * MS

        pii = self.pii_pool[rng.randrange(len(self.pii_pool))] if rng.random() < self.pii_fraction else None
        question = rng.choice(scen.questions).format(
            order=_order_id(rng),
            pr=rng.randint(1000, 9999),
            company=rng.choice(_COMPANIES),
            alert=rng.choice(_TRIAGE_ALERTS),
        )
        context = _sentences(rng, scen.context, 2, 4)
        user_text = f"{question}\n\n{context}"
        if pii is not None:
            user_text += "\n\n" + " ".join(s(pii) for s in rng.sample(_PII_SENTENCES, rng.randint(1, 3)))
        history: list[dict[str, Any]] = [{"role": "user", "parts": [{"type": "text", "content": user_text}]}]
        tool_rounds = rng.choice([0, 1, 1, 2, 2, 3]) if scen.tools else 0
        # Tool schemas and earlier turns count as input without appearing in the messages.
        hidden_input = rng.randint(150, 1500) + 120 * len(scen.tools)
        first_call = True
        round_no = 0
        while budget - used > 0:
            final = round_no >= tool_rounds
            chat = scope_for(model_scope).add()
            tool_calls: list[tuple[Tool, str, dict[str, Any]]] = []
            if not final:
                for _ in range(rng.choice([1, 1, 1, 2])):
                    tool = rng.choice(scen.tools)
                    tool_calls.append((tool, f"call_{rng.getrandbits(96):024x}", tool.arguments(rng, pii)))
            call = self._chat_span(
                chat,
                trace_id,
                agent.span_id,
                model,
                t,
                conversation_id,
                scen,
                history,
                tool_calls,
                hidden_input,
                first_call,
                pii is not None,
            )
            used += 1
            t += call.duration_ns + rng.randint(1, 20) * MS
            first_call = False
            if call.error is not None:
                # Agent frameworks retry a failed model call once before giving up.
                if rng.random() < 0.5:
                    continue
                break
            if final:
                break
            history.append(
                {
                    "role": "assistant",
                    "parts": [
                        {"type": "tool_call", "id": cid, "name": tool.name, "arguments": args}
                        for tool, cid, args in tool_calls
                    ],
                }
            )
            for tool, cid, args in tool_calls:
                if budget - used <= 0:
                    break
                span = framework_spans.add()
                result = tool.result(rng)
                dur = self._tool_span(span, trace_id, agent.span_id, tool, cid, args, result, t)
                used += 1
                t += dur + rng.randint(0, 3) * MS
                history.append(
                    {"role": "tool", "parts": [{"type": "tool_call_response", "id": cid, "response": result}]}
                )
            round_no += 1

        agent.end_time_unix_nano = t
        t += rng.randint(1, 5) * MS
        if http_span is not None:
            http_span.end_time_unix_nano = t
            _set_int(http_span, HTTP_RESPONSE_STATUS_CODE, 200)
        return used

    def _embeddings_span(
        self, span: Any, trace_id: bytes, parent: bytes, emb: EmbeddingModel, t: int, dur: int
    ) -> None:
        rng = self.rng
        span.trace_id = trace_id
        span.span_id = self.span_id()
        span.parent_span_id = parent
        span.name = f"{sc.OP_EMBEDDINGS} {emb.request_model}"
        span.kind = Span.SPAN_KIND_CLIENT
        span.start_time_unix_nano = t
        span.end_time_unix_nano = t + dur
        _set_str(span, sc.GEN_AI_OPERATION_NAME, sc.OP_EMBEDDINGS)
        _set_str(span, sc.GEN_AI_PROVIDER_NAME, emb.provider)
        _set_str(span, sc.GEN_AI_REQUEST_MODEL, emb.request_model)
        _set_str(span, sc.GEN_AI_RESPONSE_MODEL, emb.request_model)
        _set_str_array(span, GEN_AI_REQUEST_ENCODING_FORMATS, ["float"])
        _set_int(span, GEN_AI_EMBEDDINGS_DIMENSION_COUNT, emb.dimensions)
        _set_int(span, sc.GEN_AI_USAGE_INPUT_TOKENS, rng.randint(8, 64))
        _set_str(span, SERVER_ADDRESS, emb.server)
        _set_int(span, SERVER_PORT, 443)

    def _chat_span(
        self,
        span: Any,
        trace_id: bytes,
        parent: bytes,
        model: Model,
        t: int,
        conversation_id: str,
        scen: Scenario,
        history: list[dict[str, Any]],
        tool_calls: list[tuple[Tool, str, dict[str, Any]]],
        hidden_input: int,
        first_call: bool,
        has_pii: bool,
    ) -> _Call:
        rng = self.rng
        span.trace_id = trace_id
        span.span_id = self.span_id()
        span.parent_span_id = parent
        span.name = f"{model.operation} {model.request_model}"
        span.kind = Span.SPAN_KIND_CLIENT
        span.start_time_unix_nano = t
        _set_str(span, sc.GEN_AI_OPERATION_NAME, model.operation)
        _set_str(span, sc.GEN_AI_PROVIDER_NAME, model.provider)
        _set_str(span, sc.GEN_AI_REQUEST_MODEL, model.request_model)
        _set_int(span, GEN_AI_REQUEST_MAX_TOKENS, model.max_tokens)
        if not model.reasoning:
            _set_double(span, GEN_AI_REQUEST_TEMPERATURE, rng.choice([0.0, 0.2, 0.3, 0.7, 1.0]))
            if rng.random() < 0.3:
                _set_double(span, GEN_AI_REQUEST_TOP_P, 0.9)
        _set_str(span, sc.GEN_AI_CONVERSATION_ID, conversation_id)
        _set_str(span, GEN_AI_OUTPUT_TYPE, "text")
        _set_str(span, SERVER_ADDRESS, model.server)
        _set_int(span, SERVER_PORT, 443)
        _set_str(
            span,
            sc.GEN_AI_SYSTEM_INSTRUCTIONS,
            orjson.dumps([{"type": "text", "content": scen.system_prompt}]).decode(),
        )
        input_json = orjson.dumps(history).decode()
        _set_str(span, sc.GEN_AI_INPUT_MESSAGES, input_json)
        input_tokens = hidden_input + (len(scen.system_prompt) + len(input_json)) // 4

        if rng.random() < self.error_rate:
            error_type, message = rng.choice(ERRORS[model.provider])
            dur = (
                rng.randint(100, 3000) * MS
                if "imeout" not in error_type
                else rng.randint(30, 120) * 1000 * MS
            )
            span.end_time_unix_nano = t + dur
            _set_str(span, sc.ERROR_TYPE, error_type)
            span.status.code = Status.STATUS_CODE_ERROR
            span.status.message = message
            ev = span.events.add()
            ev.time_unix_nano = t + dur
            ev.name = "exception"
            _set_str(ev, EXCEPTION_TYPE, error_type)
            _set_str(ev, EXCEPTION_MESSAGE, message)
            return _Call(model, input_tokens, 0, dur, error_type)

        if tool_calls:
            parts: list[dict[str, Any]] = [
                {"type": "tool_call", "id": cid, "name": tool.name, "arguments": args}
                for tool, cid, args in tool_calls
            ]
            finish = "tool_calls" if model.provider != PROVIDER_ANTHROPIC else "tool_use"
            output_tokens = 18 + 30 * len(tool_calls) + rng.randint(0, 40)
        else:
            text = _sentences(rng, scen.answers, 1, 2)
            parts = [{"type": "text", "content": text}]
            finish = "stop" if model.provider != PROVIDER_ANTHROPIC else "end_turn"
            output_tokens = len(text) // 4 + rng.randint(0, 60)
        reasoning = 0
        if model.reasoning and (model.provider in (PROVIDER_OPENAI, PROVIDER_GEMINI) or rng.random() < 0.4):
            reasoning = rng.randint(64, 3000)
            output_tokens += reasoning
        output_json = orjson.dumps([{"role": "assistant", "parts": parts, "finish_reason": finish}]).decode()
        _set_str(span, sc.GEN_AI_OUTPUT_MESSAGES, output_json)

        # A few calls use far more tokens than usual (runaway context, huge documents):
        # the anomaly detector's prey.
        if rng.random() < 0.01:
            input_tokens *= rng.randint(8, 40)
        cache_read = cache_creation = 0
        if model.caches and input_tokens >= 1024:
            if not first_call or rng.random() < 0.4:
                cache_read = int(input_tokens * rng.uniform(0.5, 0.95)) // 128 * 128
            elif model.cache_writes and rng.random() < 0.5:
                cache_creation = (input_tokens - rng.randint(50, 300)) // 128 * 128

        ttft = rng.randint(200, 900) * MS
        dur = ttft + int(output_tokens / model.tokens_per_s * 1e9)
        if rng.random() < 0.02:
            dur *= rng.randint(3, 8)
        span.end_time_unix_nano = t + dur
        _set_str(span, sc.GEN_AI_RESPONSE_ID, self._response_id(model.provider))
        _set_str(span, sc.GEN_AI_RESPONSE_MODEL, model.response_model)
        _set_str_array(span, GEN_AI_RESPONSE_FINISH_REASONS, [finish])
        _set_int(span, sc.GEN_AI_USAGE_INPUT_TOKENS, input_tokens)
        _set_int(span, sc.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens)
        if cache_read:
            _set_int(span, sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, cache_read)
        if cache_creation:
            _set_int(span, sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, cache_creation)
        if reasoning:
            _set_int(span, sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, reasoning)
        return _Call(model, input_tokens, output_tokens, dur, None)

    def _response_id(self, provider: str) -> str:
        rnd = self.rng.getrandbits(128)
        if provider in (PROVIDER_OPENAI, PROVIDER_AZURE_OPENAI):
            return f"chatcmpl-{base64.b32encode(rnd.to_bytes(16, 'big')).decode()[:29]}"
        if provider in (PROVIDER_ANTHROPIC, PROVIDER_BEDROCK):
            return f"msg_{base64.b32encode(rnd.to_bytes(16, 'big')).decode()[:24].lower()}"
        return f"{rnd:032x}"

    def _tool_span(
        self,
        span: Any,
        trace_id: bytes,
        parent: bytes,
        tool: Tool,
        call_id: str,
        args: dict[str, Any],
        result: Any,
        t: int,
    ) -> int:
        rng = self.rng
        span.trace_id = trace_id
        span.span_id = self.span_id()
        span.parent_span_id = parent
        span.name = f"{sc.OP_EXECUTE_TOOL} {tool.name}"
        span.kind = Span.SPAN_KIND_INTERNAL
        span.start_time_unix_nano = t
        dur = rng.randint(3, 400) * MS
        span.end_time_unix_nano = t + dur
        _set_str(span, sc.GEN_AI_OPERATION_NAME, sc.OP_EXECUTE_TOOL)
        _set_str(span, sc.GEN_AI_TOOL_NAME, tool.name)
        _set_str(span, sc.GEN_AI_TOOL_CALL_ID, call_id)
        _set_str(span, GEN_AI_TOOL_TYPE, "function")
        _set_str(span, GEN_AI_TOOL_DESCRIPTION, tool.description)
        _set_str(span, sc.GEN_AI_TOOL_CALL_ARGUMENTS, orjson.dumps(args).decode())
        if rng.random() < self.error_rate:
            message = f"{tool.name} failed: upstream returned 503"
            _set_str(span, sc.ERROR_TYPE, "ToolExecutionError")
            span.status.code = Status.STATUS_CODE_ERROR
            span.status.message = message
        else:
            _set_str(span, sc.GEN_AI_TOOL_CALL_RESULT, orjson.dumps(result).decode())
        return dur

    # metrics ---------------------------------------------------------------------------
    def metrics_request(self, points_per_request: int, interval_ns: int) -> ExportMetricsServiceRequest:
        """GenAI client metrics of one service instance over one export interval: token usage
        and operation duration histograms per (provider, model, operation[, token type])."""
        rng = self.rng
        svc: Service = _weighted(rng, SERVICES)
        req = ExportMetricsServiceRequest()
        rm = req.resource_metrics.add()
        rm.resource.CopyFrom(rng.choice(self.resources[svc.name]))
        start = self.clock
        self.clock += interval_ns
        by_scope: dict[str, Any] = {}
        points = 0
        while points < points_per_request:
            provider = _weighted(rng, svc.providers)
            model: Model = _weighted(rng, CHAT_MODELS[provider])
            scope = PROVIDER_SCOPES[provider]
            sm = by_scope.get(scope[0])
            if sm is None:
                sm = rm.scope_metrics.add()
                sm.scope.name, sm.scope.version = scope
                usage = sm.metrics.add()
                usage.name = METRIC_TOKEN_USAGE
                usage.unit = "{token}"
                usage.description = "Number of input and output tokens used."
                usage.histogram.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
                duration = sm.metrics.add()
                duration.name = METRIC_OPERATION_DURATION
                duration.unit = "s"
                duration.description = "GenAI operation duration."
                duration.histogram.aggregation_temporality = (
                    AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
                )
                by_scope[scope[0]] = sm
            usage_points = sm.metrics[0].histogram.data_points
            duration_points = sm.metrics[1].histogram.data_points
            calls = [self._simulated_call(model) for _ in range(rng.randint(1, 40))]
            for token_type in (TOKEN_TYPE_INPUT, TOKEN_TYPE_OUTPUT):
                values = [
                    c.input_tokens if token_type == TOKEN_TYPE_INPUT else c.output_tokens
                    for c in calls
                    if c.error is None
                ]
                if values:
                    dp = usage_points.add()
                    self._histogram_point(dp, values, TOKEN_USAGE_BUCKETS, start, self.clock)
                    self._model_point_attrs(dp, model)
                    _set_str(dp, sc.GEN_AI_TOKEN_TYPE, token_type)
                    points += 1
            for error in (None, *sorted({c.error for c in calls if c.error is not None})):
                durations = [c.duration_ns / 1e9 for c in calls if c.error == error]
                dp = duration_points.add()
                self._histogram_point(dp, durations, DURATION_BUCKETS, start, self.clock)
                self._model_point_attrs(dp, model)
                if error is not None:
                    _set_str(dp, sc.ERROR_TYPE, error)
                points += 1
        return req

    def _simulated_call(self, model: Model) -> _Call:
        rng = self.rng
        if rng.random() < self.error_rate:
            return _Call(model, 0, 0, rng.randint(100, 3000) * MS, rng.choice(ERRORS[model.provider])[0])
        inp = rng.randint(300, 6000)
        out = rng.randint(20, 900) + (rng.randint(64, 3000) if model.reasoning else 0)
        return _Call(model, inp, out, rng.randint(200, 900) * MS + int(out / model.tokens_per_s * 1e9), None)

    @staticmethod
    def _model_point_attrs(dp: Any, model: Model) -> None:
        _set_str(dp, sc.GEN_AI_OPERATION_NAME, model.operation)
        _set_str(dp, sc.GEN_AI_PROVIDER_NAME, model.provider)
        _set_str(dp, sc.GEN_AI_REQUEST_MODEL, model.request_model)
        _set_str(dp, sc.GEN_AI_RESPONSE_MODEL, model.response_model)
        _set_str(dp, SERVER_ADDRESS, model.server)

    @staticmethod
    def _histogram_point(
        dp: Any, values: Sequence[float], bounds: Sequence[float], start: int, end: int
    ) -> None:
        dp.start_time_unix_nano = start
        dp.time_unix_nano = end
        dp.count = len(values)
        dp.sum = float(sum(values))
        if values:  # an interval with no calls has a zero count and no min/max (optional in OTLP)
            dp.min = float(min(values))
            dp.max = float(max(values))
        dp.explicit_bounds.extend(bounds)
        counts = [0] * (len(bounds) + 1)
        for v in values:
            i = 0
            while i < len(bounds) and v > bounds[i]:
                i += 1
            counts[i] += 1
        dp.bucket_counts.extend(counts)

    # logs ------------------------------------------------------------------------------
    def logs_request(self, records_per_request: int) -> ExportLogsServiceRequest:
        """Application logs of one service instance: GenAI inference events (the conventions'
        ``gen_ai.client.inference.operation.details`` with the messages) among plain logs."""
        rng = self.rng
        svc: Service = _weighted(rng, SERVICES)
        scen = svc.scenario
        req = ExportLogsServiceRequest()
        rl: ResourceLogs = req.resource_logs.add()
        rl.resource.CopyFrom(rng.choice(self.resources[svc.name]))
        app: ScopeLogs = rl.scope_logs.add()
        app.scope.CopyFrom(InstrumentationScope(name=svc.name.replace("-", "_"), version=svc.version))
        events: ScopeLogs = rl.scope_logs.add()
        events.scope.name, events.scope.version = svc.framework_scope
        for _ in range(records_per_request):
            self.clock += rng.randint(1, 200) * MS
            trace_id, span_id = self.trace_id(), self.span_id()
            if rng.random() < 0.5:
                provider = _weighted(rng, svc.providers)
                model: Model = _weighted(rng, CHAT_MODELS[provider])
                call = self._simulated_call(model)
                rec = events.log_records.add()
                rec.event_name = EVENT_INFERENCE_DETAILS
                rec.severity_number = SeverityNumber.SEVERITY_NUMBER_INFO
                rec.severity_text = "INFO"
                text = rng.choice(scen.questions).format(
                    order=_order_id(rng),
                    pr=rng.randint(1000, 9999),
                    company=rng.choice(_COMPANIES),
                    alert=rng.choice(_TRIAGE_ALERTS),
                )
                if rng.random() < self.pii_fraction:
                    text += " " + rng.choice(_PII_SENTENCES)(rng.choice(self.pii_pool))
                _set_str(rec, sc.GEN_AI_OPERATION_NAME, model.operation)
                _set_str(rec, sc.GEN_AI_PROVIDER_NAME, model.provider)
                _set_str(rec, sc.GEN_AI_REQUEST_MODEL, model.request_model)
                _set_str(
                    rec,
                    sc.GEN_AI_INPUT_MESSAGES,
                    orjson.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}]).decode(),
                )
                if call.error is None:
                    _set_str(rec, sc.GEN_AI_RESPONSE_MODEL, model.response_model)
                    _set_int(rec, sc.GEN_AI_USAGE_INPUT_TOKENS, call.input_tokens)
                    _set_int(rec, sc.GEN_AI_USAGE_OUTPUT_TOKENS, call.output_tokens)
                    _set_str(
                        rec,
                        sc.GEN_AI_OUTPUT_MESSAGES,
                        orjson.dumps(
                            [
                                {
                                    "role": "assistant",
                                    "parts": [{"type": "text", "content": rng.choice(scen.answers)}],
                                    "finish_reason": "stop",
                                }
                            ]
                        ).decode(),
                    )
                else:
                    _set_str(rec, sc.ERROR_TYPE, call.error)
            else:
                rec = app.log_records.add()
                level = _weighted(
                    rng,
                    [
                        (("INFO", SeverityNumber.SEVERITY_NUMBER_INFO), 0.8),
                        (("WARN", SeverityNumber.SEVERITY_NUMBER_WARN), 0.15),
                        (("ERROR", SeverityNumber.SEVERITY_NUMBER_ERROR), 0.05),
                    ],
                )
                rec.severity_text, rec.severity_number = level
                body = rng.choice(
                    [
                        f"handled POST {scen.http_route} in {rng.randint(300, 9000)} ms",
                        f"agent {scen.agent_name} finished after {rng.randint(1, 4)} tool rounds",
                        f"retrying model call after {rng.choice(['429', '503', 'timeout'])} (attempt 2/3)",
                        f"cache hit ratio {rng.uniform(0.2, 0.9):.2f} for prompt prefix",
                    ]
                )
                if rng.random() < self.pii_fraction:
                    body += f" user={rng.choice(self.pii_pool).email}"
                rec.body.string_value = body
            rec.time_unix_nano = self.clock
            rec.observed_time_unix_nano = self.clock + rng.randint(0, 5) * MS
            rec.trace_id = trace_id
            rec.span_id = span_id
            rec.flags = 1
        return req


def _start(start_time_ns: int | None) -> int:
    return time.time_ns() if start_time_ns is None else start_time_ns


def generate_trace_requests(
    n_requests: int,
    spans_per_request: int = 100,
    seed: int = 42,
    pii_fraction: float = 0.1,
    start_time_ns: int | None = None,
) -> list[ExportTraceServiceRequest]:
    """``n_requests`` requests of exactly ``spans_per_request`` spans each.

    ``pii_fraction`` is the expected share of model-call spans whose prompt contains PII:
    it is drawn per agent run, every model call of such a run carries the PII in
    ``gen_ai.input.messages`` (the conversation history), and its tool calls may carry
    it in their arguments.
    """
    if spans_per_request < 1:
        raise ValueError("spans_per_request must be >= 1")
    gen = _Generator(seed, pii_fraction, _start(start_time_ns))
    return [gen.trace_request(spans_per_request) for _ in range(n_requests)]


def generate_metrics_requests(
    n_requests: int,
    points_per_request: int = 50,
    seed: int = 42,
    start_time_ns: int | None = None,
    interval_s: float = 60.0,
) -> list[ExportMetricsServiceRequest]:
    """GenAI client metrics (``gen_ai.client.token.usage``, ``gen_ai.client.operation.duration``
    delta histograms), at least ``points_per_request`` data points per request."""
    gen = _Generator(seed, 0.0, _start(start_time_ns))
    return [gen.metrics_request(points_per_request, int(interval_s * 1e9)) for _ in range(n_requests)]


def generate_logs_requests(
    n_requests: int,
    records_per_request: int = 100,
    seed: int = 42,
    pii_fraction: float = 0.1,
    start_time_ns: int | None = None,
) -> list[ExportLogsServiceRequest]:
    """Log records: GenAI inference events with messages, and plain application logs."""
    gen = _Generator(seed, pii_fraction, _start(start_time_ns))
    return [gen.logs_request(records_per_request) for _ in range(n_requests)]


# --- Encoding for load drivers -------------------------------------------------------


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: uncompressed flag byte and big-endian length."""
    return struct.pack(">BI", 0, len(message)) + message


_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def _hex_ids(node: Any) -> None:
    """protobuf's JSON mapping writes bytes as base64; OTLP JSON wants trace/span ids in hex."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)


def to_otlp_json(message: Message) -> bytes:
    """OTLP JSON of a request, with the receiver's own codec (``otel_receiver.otlp_json``).

    Outside this project's environment it falls back to protobuf's JSON mapping with
    integer enums and hex ids, which is what OTLP JSON requires of it."""
    try:
        from otel_receiver import otlp_json
    except ImportError:
        as_dict = json_format.MessageToDict(message, use_integers_for_enums=True)
        _hex_ids(as_dict)
        return json.dumps(as_dict, separators=(",", ":")).encode()
    return otlp_json.encode(message)


def write_bodies(
    out: Path,
    spans_per_request: int = 100,
    seed: int = 42,
    pii_fraction: float = 0.1,
    start_time_ns: int | None = None,
) -> dict[str, int]:
    """Write one pre-encoded request per signal and encoding; returns file sizes."""
    out.mkdir(parents=True, exist_ok=True)
    traces = generate_trace_requests(1, spans_per_request, seed, pii_fraction, start_time_ns)[0]
    metrics = generate_metrics_requests(1, max(1, spans_per_request // 2), seed, start_time_ns)[0]
    logs = generate_logs_requests(1, spans_per_request, seed, pii_fraction, start_time_ns)[0]
    files: dict[str, bytes] = {}
    for name, msg in (("traces", traces), ("metrics", metrics), ("logs", logs)):
        pb = msg.SerializeToString()
        files[f"{name}.pb"] = pb
        files[f"{name}.json"] = to_otlp_json(msg)
        files[f"{name}.grpc"] = grpc_frame(pb)
    for name, data in files.items():
        (out / name).write_bytes(data)
    return {name: len(data) for name, data in files.items()}


def write_trace_rotation(
    out: Path, count: int, spans_per_request: int = 100, seed: int = 42, pii_fraction: float = 0.1
) -> None:
    """Write ``count`` distinct trace requests as ``out/NNNN.pb`` for drivers that post
    them in turn."""
    out.mkdir(parents=True, exist_ok=True)
    for i, msg in enumerate(generate_trace_requests(count, spans_per_request, seed, pii_fraction)):
        (out / f"{i:04d}.pb").write_bytes(msg.SerializeToString())


# the anomaly processor's default series dimensions, in the order of SeriesSpec.key
SERIES_KEYS: Final = (
    sc.SERVICE_NAME,
    sc.GEN_AI_PROVIDER_NAME,
    sc.GEN_AI_REQUEST_MODEL,
    sc.GEN_AI_OPERATION_NAME,
)


def write_incident_day(
    out: Path, hours: float, seed: int = 7, spans_per_request: int = 100, start_time_ns: int | None = None
) -> dict[str, Any]:
    """Write a day of the incident suite (``bench.incidents``: normal traffic of six series
    with a latency x5, an error burst, a looping agent and a price change injected) as
    ``out/NNNN.pb`` trace requests in time order, and its ground truth as
    ``out/incidents.json``: each incident's kind, series and window in span time, for
    replaying the day through a receiver and checking what it flagged."""
    from bench import incidents  # it builds on this module

    # by default the day ends now: a store's TTL keeps it, and "the last hour" queries find it
    start_ns = time.time_ns() - int(hours * 3600e9) if start_time_ns is None else start_time_ns
    day = incidents.generate(seed, hours, spans_per_request=spans_per_request, start_ns=start_ns)
    out.mkdir(parents=True, exist_ok=True)
    for i, request in enumerate(day.requests):
        (out / f"{i:04d}.pb").write_bytes(request.SerializeToString())

    def window_end(inc: incidents.Incident) -> int | None:
        # a price change has no end: every later call costs more
        return day.start_ns + int((inc.start_s + inc.duration_s) * 1e9) if inc.duration_s else None

    truth = {
        "seed": seed,
        "hours": hours,
        "start_ns": day.start_ns,
        "requests": len(day.requests),
        "spans": sum(len(ss.spans) for r in day.requests for rs in r.resource_spans for ss in rs.scope_spans),
        "incidents": [
            {
                "name": inc.name,
                "kind": inc.kind,
                "series": dict(zip(SERIES_KEYS, day.series[inc.series].key, strict=True)),
                "start_ns": day.start_ns + int(inc.start_s * 1e9),
                "end_ns": window_end(inc),
            }
            for inc in day.incidents
        ],
    }
    (out / "incidents.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workload", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for the request bodies")
    parser.add_argument("--spans-per-request", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--pii-fraction", type=float, default=0.1)
    parser.add_argument(
        "--start-time-ns", type=int, default=None, help="timestamp of the first span (default: now)"
    )
    parser.add_argument(
        "--incidents",
        type=float,
        metavar="HOURS",
        default=None,
        help="instead: HOURS of the incident suite's traffic with four injected incidents, as "
        "NNNN.pb requests plus incidents.json (the ground truth); the day ends now unless --start-time-ns",
    )
    args = parser.parse_args(argv)
    if args.incidents is not None:
        truth = write_incident_day(
            args.out, args.incidents, args.seed, args.spans_per_request, args.start_time_ns
        )
        print(f"{args.out}: {truth['requests']} trace requests, {truth['spans']} spans; incidents:")
        for inc in truth["incidents"]:
            print(f"  {inc['name']} ({inc['kind']}) on {inc['series']['service.name']} / "
                  f"{inc['series']['gen_ai.request.model']} from {inc['start_ns']} ns")  # fmt: skip
        return 0
    sizes = write_bodies(args.out, args.spans_per_request, args.seed, args.pii_fraction, args.start_time_ns)
    for name, size in sorted(sizes.items()):
        print(f"{args.out / name}\t{size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
