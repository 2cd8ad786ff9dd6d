"""Configuration of the ``pii_redaction`` processor (see README.md for the table)."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Literal

import phonenumbers
import re2
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from otel_receiver.component import ComponentConfig
from processors.pii_redaction.detectors import BLOCKED_KEY, BUILTIN_TYPES, detector_names
from semconv import attributes as sc

Action = Literal["mask", "hash", "drop"]

VALIDATOR_GROUP = "otel_receiver.pii_validators"
MIN_HASH_KEY_LENGTH = 16

# Identifiers, model names and counters: never PII, and rewriting them would break joins.
DEFAULT_ALLOWED_KEYS: tuple[str, ...] = (
    sc.SERVICE_NAME,
    sc.SERVICE_NAMESPACE,
    sc.SERVICE_INSTANCE_ID,
    sc.GEN_AI_OPERATION_NAME,
    sc.GEN_AI_PROVIDER_NAME,
    sc.GEN_AI_REQUEST_MODEL,
    sc.GEN_AI_RESPONSE_MODEL,
    sc.GEN_AI_RESPONSE_ID,
    sc.GEN_AI_USAGE_INPUT_TOKENS,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS,
    sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    sc.GEN_AI_CONVERSATION_ID,
    sc.GEN_AI_AGENT_ID,
    sc.GEN_AI_AGENT_NAME,
    sc.GEN_AI_TOOL_NAME,
    sc.GEN_AI_TOOL_CALL_ID,
    sc.GEN_AI_TOKEN_TYPE,
    sc.PII_REDACTED_COUNT,
    sc.PII_REDACTED_TYPES,
    sc.PII_REDACTED_COUNTS,
    # the authenticated principal (an actor id is often an e-mail address): an audit needs it
    sc.AUDIT_TENANT_ID,
    sc.AUDIT_ACTOR_ID,
)

DEFAULT_BLOCKED_KEY_PATTERNS: tuple[str, ...] = (
    r"(?i).*(?:password|passwd|secret|api[_.\-]?key|access[_.\-]?key|private[_.\-]?key|credential).*",
    r"(?i)http\.request\.header\.(?:authorization|proxy[_\-]authorization|cookie|x[_\-]api[_\-]key)",
    r"(?i)http\.response\.header\.set[_\-]cookie",
    r"(?i)authorization|cookie|x-api-key",
)


def _check_re2(pattern: str, what: str) -> str:
    try:
        re2.compile(pattern)
    except re2.error as e:
        raise ValueError(f"{what}: not a valid RE2 pattern ({e})") from None
    return pattern


def resolve_validator(ref: str) -> Callable[[str], bool]:
    """``module:function`` or the name of an entry point in ``otel_receiver.pii_validators``."""
    if ":" in ref:
        module_name, _, attr = ref.partition(":")
        try:
            fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"validator {ref!r} cannot be imported: {type(e).__name__}") from None
    else:
        matches = [ep for ep in entry_points(group=VALIDATOR_GROUP) if ep.name == ref]
        if not matches:
            raise ValueError(
                f"validator {ref!r} is neither module:function nor an entry point of {VALIDATOR_GROUP}"
            )
        fn = matches[0].load()
    if not callable(fn):
        raise ValueError(f"validator {ref!r} is not callable")
    result: Callable[[str], bool] = fn
    return result


class CustomDetectorConfig(ComponentConfig):
    name: str = Field(min_length=1, description="detector name (unique)")
    type: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$", description="type written in the mask, e.g. EMPLOYEE_ID")
    pattern: str = Field(description="RE2 regex; a named group `value` limits what is redacted")
    validator: str | None = Field(
        default=None,
        description="`module:function` or an entry point name in `otel_receiver.pii_validators`; "
        "called with the candidate text, returns True to redact",
    )
    anchor: str | None = Field(
        default=None,
        description="prefilter regex over raw bytes, a superset of `pattern`; default: `pattern` "
        "without its zero-width assertions",
    )

    @field_validator("pattern", "anchor")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        return None if v is None else _check_re2(v, "pattern")

    @field_validator("validator")
    @classmethod
    def _importable(cls, v: str | None) -> str | None:
        if v is not None:
            resolve_validator(v)
        return v


class KeyRule(ComponentConfig):
    pattern: str = Field(description="RE2 regex matched against the whole attribute (or map/JSON) key")
    action: Action = Field(description="what happens to the whole value: mask, hash or drop")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        return _check_re2(v, "pattern")


class NerConfig(ComponentConfig):
    enabled: bool = Field(default=False, description="run Presidio NER (extra `[ner]`) on every string")
    entities: list[str] = Field(
        default_factory=lambda: ["PERSON", "LOCATION"], description="Presidio entity types to redact"
    )
    language: str = Field(default="en", description="language of the Presidio analyzer")
    score_threshold: float = Field(default=0.6, ge=0.0, le=1.0, description="minimum Presidio score")

    @model_validator(mode="after")
    def _installed(self) -> NerConfig:
        if self.enabled and importlib.util.find_spec("presidio_analyzer") is None:
            raise ValueError(
                "ner.enabled requires presidio-analyzer and a spaCy model: "
                "pip install 'otel-genai-receiver[ner]' && python -m spacy download en_core_web_lg"
            )
        return self


class PiiRedactionConfig(ComponentConfig):
    # Validation errors must not echo the input: it holds the hash key.
    model_config = ConfigDict(hide_input_in_errors=True)

    detectors: list[str] | None = Field(
        default=None, description="built-in detectors (names or types) to run; default all"
    )
    disabled_detectors: list[str] = Field(
        default_factory=list, description="built-in detectors (names or types) switched off"
    )
    custom_detectors: list[CustomDetectorConfig] = Field(default_factory=list, description="extra detectors")
    default_action: Action = Field(default="mask", description="action for detected values")
    actions: dict[str, Action] = Field(
        default_factory=dict, description="action per type (EMAIL, SECRET, ...) or detector name"
    )
    allowed_keys: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_KEYS), description="keys never touched"
    )
    allowed_key_patterns: list[str] = Field(
        default_factory=list, description="RE2 full-match key patterns never touched"
    )
    blocked_key_patterns: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BLOCKED_KEY_PATTERNS),
        description="RE2 full-match key patterns whose whole value is masked",
    )
    key_rules: list[KeyRule] = Field(
        default_factory=list,
        description="key patterns with their own action (mask/hash/drop the whole value)",
    )
    hash_key: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key of the hash action, e.g. ${env:PII_HASH_KEY}"
    )
    parse_json: bool = Field(default=True, description="redact inside string values that hold JSON")
    phone_regions: list[str] = Field(
        default_factory=lambda: ["US"],
        description="regions (ISO 3166 alpha-2) for phone numbers written without +country code",
    )
    redact_private_ips: bool = Field(
        default=False, description="also redact private, loopback and link-local IP addresses"
    )
    redact_documentation_examples: bool = Field(
        default=True,
        description="also redact e-mail addresses at documentation domains (example.com, *.test) and IP "
        "addresses in documentation ranges (192.0.2.0/24, 2001:db8::/32): they are no one's, but they "
        "are what test payloads and demos use",
    )
    annotate: bool = Field(
        default=True, description="write pii.redacted.count/types on spans and log records"
    )
    max_depth: int = Field(
        default=64, ge=1, le=512, description="nesting depth beyond which values are masked whole"
    )
    ner: NerConfig = Field(default_factory=NerConfig, description="optional Presidio NER")

    @field_validator("allowed_key_patterns", "blocked_key_patterns")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        for p in v:
            _check_re2(p, "key pattern")
        return v

    @field_validator("phone_regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        unknown = [r for r in v if r.upper() not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown phone regions: {unknown}")
        return [r.upper() for r in v]

    @model_validator(mode="after")
    def _consistent(self) -> PiiRedactionConfig:
        names = set(detector_names())
        known = names | set(BUILTIN_TYPES)
        for field_name, values in (
            ("detectors", self.detectors or []),
            ("disabled_detectors", self.disabled_detectors),
        ):
            bad = [x for x in values if x not in known]
            if bad:
                raise ValueError(f"{field_name}: unknown detectors {bad}; known: {sorted(known)}")
        custom_names = [c.name for c in self.custom_detectors]
        clash = (set(custom_names) & names) | {n for n in custom_names if custom_names.count(n) > 1}
        if clash:
            raise ValueError(f"custom_detectors: duplicate names {sorted(clash)}")
        action_targets = known | set(custom_names) | {c.type for c in self.custom_detectors} | {BLOCKED_KEY}
        bad = [k for k in self.actions if k not in action_targets]
        if bad:
            raise ValueError(f"actions: unknown types or detectors {bad}")
        uses_hash = (
            self.default_action == "hash"
            or "hash" in self.actions.values()
            or any(r.action == "hash" for r in self.key_rules)
        )
        if uses_hash:
            if self.hash_key is None:
                raise ValueError(
                    "hash_key: the hash action needs a key (e.g. hash_key: ${env:PII_HASH_KEY}); "
                    "an unkeyed hash of a short value is reversible"
                )
            if len(self.hash_key.get_secret_value()) < MIN_HASH_KEY_LENGTH:
                raise ValueError(f"hash_key: must be at least {MIN_HASH_KEY_LENGTH} characters")
        return self
