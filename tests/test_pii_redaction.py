"""pii_redaction: detectors, actions, key rules, every location, JSON kept valid, config errors."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import importlib.machinery
import json
import logging
import random
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from pydantic import ValidationError

from bench.workload import generate_logs_requests, generate_trace_requests
from otel_receiver.attributes import any_value_to_python, get
from otel_receiver.component import ComponentSettings, RequestContext
from otel_receiver.telemetry import SelfTelemetry
from processors.pii_redaction import PiiRedactionConfig, PiiRedactionProcessor, factory, locate
from processors.pii_redaction.detectors import Detector, relax_assertions
from processors.pii_redaction.engine import Hit, Tally, _resolve
from semconv import attributes as sc

HASH_KEY = "test-hash-key-0123456789abcdef"
EMAIL = "maria.gonzalez@gmail.com"
CARD = "4111 1111 1111 1111"
PHONE = "+1 (415) 555-0132"
IBAN = "DE89 3704 0044 0532 0130 00"
SSN = "219-45-6789"
OPENAI_KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"


def make(telemetry: SelfTelemetry | None = None, **config: Any) -> PiiRedactionProcessor:
    settings = ComponentSettings("pii_redaction", telemetry or SelfTelemetry(), logging.getLogger("test"))
    proc = factory.create(PiiRedactionConfig.model_validate(config), settings)
    assert isinstance(proc, PiiRedactionProcessor)
    return proc


_SHARED: dict[str, PiiRedactionProcessor] = {}


def shared(**config: Any) -> PiiRedactionProcessor:
    """One processor per config for tests that only read results (building one takes ~0.3 s)."""
    key = json.dumps(config, sort_keys=True)
    if key not in _SHARED:
        _SHARED[key] = make(**config)
    return _SHARED[key]


def put(attrs: Any, key: str, value: Any) -> None:
    kv = attrs.add()
    kv.key = key
    _set_any(kv.value, value)


def _set_any(v: AnyValue, value: Any) -> None:
    if isinstance(value, str):
        v.string_value = value
    elif isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, int):
        v.int_value = value
    elif isinstance(value, float):
        v.double_value = value
    elif isinstance(value, bytes):
        v.bytes_value = value
    elif isinstance(value, list):
        for x in value:
            _set_any(v.array_value.values.add(), x)
    elif isinstance(value, dict):
        for k, x in value.items():
            kv = v.kvlist_value.values.add()
            kv.key = k
            _set_any(kv.value, x)


def trace_request(span_attrs: dict[str, Any]) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    put(rs.resource.attributes, "service.name", "chat-api")
    span = rs.scope_spans.add().spans.add()
    span.trace_id = bytes(range(16))
    span.span_id = bytes(range(8))
    span.name = "chat gpt-4o"
    for k, v in span_attrs.items():
        put(span.attributes, k, v)
    return req


def the_span(req: ExportTraceServiceRequest) -> Any:
    return req.resource_spans[0].scope_spans[0].spans[0]


def attr(attrs: Any, key: str) -> Any:
    v = get(attrs, key)
    return None if v is None else any_value_to_python(v)


def redact(text: str, **config: Any) -> tuple[str | None, dict[str, int]]:
    tally = Tally()
    result = shared(**config).redactor.redact_text(text, tally)
    return result, tally.by_type


# --- detectors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "type_name"),
    [
        (f"write to {EMAIL} today", "EMAIL"),
        (f"card {CARD} exp 09/28", "CREDIT_CARD"),
        ("card 5500-0000-0000-0004 please", "CREDIT_CARD"),
        ("amex 378282246310005.", "CREDIT_CARD"),
        (f"ssn {SSN}", "US_SSN"),
        ("my social security number: 219456789", "US_SSN"),
        (f"IBAN {IBAN} thanks", "IBAN"),
        ("iban GB82WEST12345698765432.", "IBAN"),
        ("pay to de89 3704 0044 0532 0130 00 this week", "IBAN"),  # written in lower case
        (f"call {PHONE}", "PHONE"),
        ("call 415-555-0132 now", "PHONE"),
        ("ring +44 20 7946 0958", "PHONE"),
        ("client 81.2.69.160 connected", "IP_ADDRESS"),
        ("from 2a00:1450:4007:80e::200e over v6", "IP_ADDRESS"),
        (f"OPENAI_API_KEY={OPENAI_KEY}", "SECRET"),
        ("key sk-ant-api03-" + "aB3" * 30 + " here", "SECRET"),
        ("aws AKIAIOSFODNN7EXAMPL3 x", "SECRET"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "SECRET"),
        ("token ghp_" + "a1B2c3D4e5" * 4 + " pushed", "SECRET"),
        ("glpat-" + "x1Y2z3W4v5U6t7S8r9Q0", "SECRET"),
        ("slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "SECRET"),
        ("stripe sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "SECRET"),
        ("google AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW", "SECRET"),
        (
            "jwt eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
            "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "SECRET",
        ),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----", "SECRET"),
        ("Authorization: Bearer abcDEF0123456789ghiJKL", "SECRET"),
        ("postgres://app:S3cretPw@db.internal:5432/app", "SECRET"),
        ("redis://:S3cretPw@cache.internal:6379/0", "SECRET"),
        ("curl -H 'Authorization: Basic YWxpY2U6czNjcjN0' https://api", "SECRET"),
        ("GET https://api.example.net/v1?access_token=abc123XYZ789&x=1", "SECRET"),
        ("Server=db;User Id=app;Password=Hunter2Pass;", "SECRET"),
    ],
)
def test_each_detector_finds_its_type(text: str, type_name: str) -> None:
    out, types = redact(text)
    assert out is not None and f"[REDACTED:{type_name}]" in out, (out, types)
    assert types.get(type_name, 0) >= 1


@pytest.mark.parametrize(
    "text",
    [
        "order 4111 1111 1111 1112 failed luhn",  # Luhn-invalid
        "ticket 1234567890123456",  # no card issuer prefix
        "ssn 666-12-3456 and 000-12-3456 and 900-12-3456",  # never-issued areas
        "iban DE89 3704 0044 0532 0130 01",  # mod-97 wrong
        "the se12 abcd efgh ijkl release and de12 more words here",  # iban-shaped words
        "released v1.2.3.4 and version 10.0.0.1",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "at 2024-01-15 10:30:00 the price was $1,299.99 for 3 items",
        "see std::vector and Foo::bar in C++",
        "private 10.0.0.12 and 192.168.1.20",  # not public by default
        "pip install scikit-learn sk-learn-is-a-great-library-name",
        "the password: ******** is hidden",
        "a basic test of basic understanding, basic YWJjZA==",  # base64 but no user:password
        "[REDACTED:EMAIL] already",
    ],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert redact(text) == (None, {})


@pytest.mark.parametrize(
    ("text", "type_name"),
    [
        ("contact admin@example.com for the demo", "EMAIL"),
        ("write to qa@staging.test", "EMAIL"),
        ("from 203.0.113.7", "IP_ADDRESS"),
        ("from 2001:db8::8a2e:370:7334", "IP_ADDRESS"),
    ],
)
def test_documentation_examples_are_redacted_unless_kept(text: str, type_name: str) -> None:
    # They belong to no one, but they are what test payloads and demos use: a first try
    # with admin@example.com must not look like a redactor that does nothing.
    assert redact(text)[1] == {type_name: 1}
    assert redact(text, redact_documentation_examples=False) == (None, {})


def test_private_ips_can_be_included() -> None:
    out, _ = redact("private 10.0.0.12", redact_private_ips=True)
    assert out == "private [REDACTED:IP_ADDRESS]"


def test_detectors_can_be_switched_off_by_name_or_type() -> None:
    text = f"{EMAIL} {PHONE} {OPENAI_KEY}"
    out, types = redact(text, disabled_detectors=["EMAIL", "openai_api_key"])
    assert out is not None and EMAIL in out and OPENAI_KEY in out and "PHONE" in out
    out, types = redact(text, detectors=["email"])
    assert types == {"EMAIL": 1}


def test_phone_regions_for_national_numbers() -> None:
    assert redact("ruf an: 030 12345678")[0] is None  # US only by default
    out, _ = redact("ruf an: 030 12345678", phone_regions=["US", "DE"])
    assert out == "ruf an: [REDACTED:PHONE]"


# --- actions ---------------------------------------------------------------------------------


def test_hash_is_keyed_hmac_of_the_normalised_value() -> None:
    out, _ = redact(f"a {CARD} b", default_action="hash", hash_key=HASH_KEY)
    digits = CARD.replace(" ", "")
    expected = hmac.new(HASH_KEY.encode(), digits.encode(), hashlib.sha256).hexdigest()[:8]
    assert out == f"a [CREDIT_CARD:{expected}] b"
    # Same card written differently joins to the same token; an unkeyed hash would differ.
    out2, _ = redact(f"a {CARD.replace(' ', '-')} b", default_action="hash", hash_key=HASH_KEY)
    assert out2 == out
    assert hashlib.sha256(digits.encode()).hexdigest()[:8] != expected


def test_actions_per_type_and_drop() -> None:
    proc = make(actions={"EMAIL": "hash", "PHONE": "drop"}, hash_key=HASH_KEY)
    req = trace_request({"user.note": f"mail {EMAIL}", "user.contact": f"tel {PHONE}", "keep": "fine"})
    proc.process(req, RequestContext())
    attrs = the_span(req).attributes
    assert attr(attrs, "user.note").startswith("mail [EMAIL:")
    assert attr(attrs, "user.contact") is None  # dropped
    assert attr(attrs, "keep") == "fine"
    assert attr(attrs, sc.PII_REDACTED_COUNT) == 2
    assert attr(attrs, sc.PII_REDACTED_TYPES) == ["EMAIL", "PHONE"]


def test_hash_action_without_key_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="hash_key"):
        PiiRedactionConfig.model_validate({"default_action": "hash"})
    with pytest.raises(ValidationError, match="hash_key"):
        PiiRedactionConfig.model_validate({"key_rules": [{"pattern": "user\\.id", "action": "hash"}]})
    with pytest.raises(ValidationError, match="at least 16"):
        PiiRedactionConfig.model_validate({"actions": {"EMAIL": "hash"}, "hash_key": "short"})


def test_hash_key_is_not_in_the_config_repr_or_errors() -> None:
    cfg = PiiRedactionConfig.model_validate({"default_action": "hash", "hash_key": HASH_KEY})
    assert HASH_KEY not in repr(cfg) and HASH_KEY not in str(cfg.model_dump())
    assert cfg.model_config.get("extra") == "forbid"  # the parent's settings are kept
    with pytest.raises(ValidationError) as err:
        PiiRedactionConfig.model_validate({"default_action": "hash", "hash_key": "short-secret"})
    assert "short-secret" not in str(err.value)


# --- keys ------------------------------------------------------------------------------------


def test_allowed_blocked_and_key_rules() -> None:
    proc = make(
        allowed_keys=["gen_ai.response.id", "support.mailbox"],
        blocked_key_patterns=[r"(?i).*password.*", r"http\.request\.header\.authorization"],
        key_rules=[{"pattern": r"user\.id", "action": "hash"}, {"pattern": r"debug\..*", "action": "drop"}],
        hash_key=HASH_KEY,
    )
    req = trace_request(
        {
            "support.mailbox": EMAIL,  # allowed: untouched even though it is an e-mail
            "db.password": "hunter2",  # blocked: masked whole though no detector matches
            "http.request.header.authorization": "Basic dXNlcjpwYXNz",
            "user.id": "u-12345",
            "debug.payload": "anything",
            "gen_ai.response.id": "chatcmpl-123",
        }
    )
    proc.process(req, RequestContext())
    attrs = the_span(req).attributes
    assert attr(attrs, "support.mailbox") == EMAIL
    assert attr(attrs, "db.password") == "[REDACTED:BLOCKED_KEY]"
    assert attr(attrs, "http.request.header.authorization") == "[REDACTED:BLOCKED_KEY]"
    digest = hmac.new(HASH_KEY.encode(), b"u-12345", hashlib.sha256).hexdigest()[:8]
    assert attr(attrs, "user.id") == f"[BLOCKED_KEY:{digest}]"
    assert attr(attrs, "debug.payload") is None
    assert attr(attrs, "gen_ai.response.id") == "chatcmpl-123"


def test_default_blocked_keys_cover_credentials_but_not_token_counts() -> None:
    proc = make()
    req = trace_request({"app.api_key": "abc", "gen_ai.usage.input_tokens": 12, "client_secret": "x" * 5})
    proc.process(req, RequestContext())
    attrs = the_span(req).attributes
    assert attr(attrs, "app.api_key") == "[REDACTED:BLOCKED_KEY]"
    assert attr(attrs, "client_secret") == "[REDACTED:BLOCKED_KEY]"
    assert attr(attrs, "gen_ai.usage.input_tokens") == 12


# --- JSON ------------------------------------------------------------------------------------


def _shape(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _shape(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_shape(v) for v in node]
    return type(node).__name__ if not isinstance(node, (int, str)) else "scalar"


def test_json_messages_stay_valid_with_the_same_structure() -> None:
    messages = [
        {"role": "system", "parts": [{"type": "text", "content": "You are helpful."}]},
        {
            "role": "user",
            "parts": [{"type": "text", "content": f"I am at {EMAIL}, card {CARD}.\nCall {PHONE}."}],
        },
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_1",
                    "name": "refund",
                    "arguments": {"iban": IBAN, "password": "hunter2", "amount": 4111111111111111},
                }
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "response": json.dumps({"ssn": SSN})}]},
    ]
    raw = json.dumps(messages, indent=2)
    proc = make()
    req = trace_request(
        {sc.GEN_AI_INPUT_MESSAGES: raw, sc.GEN_AI_TOOL_CALL_ARGUMENTS: json.dumps({"to": EMAIL})}
    )
    proc.process(req, RequestContext())
    attrs = the_span(req).attributes
    out = attr(attrs, sc.GEN_AI_INPUT_MESSAGES)
    parsed = json.loads(out)
    assert _shape(parsed) == _shape(messages)
    for secret in (EMAIL, CARD, PHONE, IBAN, "hunter2", SSN, "4111111111111111"):
        assert secret not in out
    # The nested JSON string is redacted in place, keeping its own formatting.
    assert parsed[3]["parts"][0]["response"] == json.dumps({"ssn": "[REDACTED:US_SSN]"})
    assert json.loads(attr(attrs, sc.GEN_AI_TOOL_CALL_ARGUMENTS)) == {"to": "[REDACTED:EMAIL]"}
    assert attr(attrs, sc.PII_REDACTED_COUNT) == 8


def test_clean_json_is_not_rewritten() -> None:
    raw = '{"a": 1,   "b": "no personal data"}'
    req = trace_request({sc.GEN_AI_OUTPUT_MESSAGES: raw})
    make().process(req, RequestContext())
    assert attr(the_span(req).attributes, sc.GEN_AI_OUTPUT_MESSAGES) == raw


def test_escaped_characters_in_json_do_not_hide_values() -> None:
    raw = '{"note": "mail maria.gonzalez\\u0040gmail.com"}'
    out, types = redact(raw)
    assert out is not None and json.loads(out) == {"note": "mail [REDACTED:EMAIL]"} and types == {"EMAIL": 1}


def test_invalid_json_is_redacted_as_text() -> None:
    out, _ = redact('{"broken": "' + EMAIL + '"')
    assert out == '{"broken": "[REDACTED:EMAIL]"'


# --- locations -------------------------------------------------------------------------------


def test_every_trace_location() -> None:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    put(rs.resource.attributes, "host.owner", EMAIL)
    ss = rs.scope_spans.add()
    put(ss.scope.attributes, "scope.contact", PHONE)
    span = ss.spans.add()
    span.trace_id = bytes(16)
    span.name = f"lookup {EMAIL}"
    span.status.message = f"failed for card {CARD}"
    put(span.attributes, "plain", OPENAI_KEY)
    put(span.attributes, "list", ["ok", f"iban {IBAN}", 3])
    put(span.attributes, "map", {"inner": {"deep": SSN}})
    put(span.attributes, "number", 4111111111111111)  # ints are not scanned (documented)
    ev = span.events.add()
    ev.name = "exception"
    put(ev.attributes, "exception.message", f"user {EMAIL} not found")
    link = span.links.add()
    put(link.attributes, "origin", "93.184.216.34")
    make().process(req, RequestContext())
    data = req.SerializeToString()
    for secret in (EMAIL, PHONE, CARD, OPENAI_KEY, IBAN, SSN, "93.184.216.34"):
        assert secret.encode() not in data
    assert attr(rs.resource.attributes, "host.owner") == "[REDACTED:EMAIL]"
    assert attr(rs.resource.attributes, sc.PII_REDACTED_COUNT) == 1
    assert attr(span.attributes, "list") == ["ok", "iban [REDACTED:IBAN]", 3]
    assert attr(span.attributes, "map") == {"inner": {"deep": "[REDACTED:US_SSN]"}}
    assert attr(span.attributes, "number") == 4111111111111111
    assert span.name == "lookup [REDACTED:EMAIL]"
    assert attr(span.attributes, sc.PII_REDACTED_TYPES) == [
        "CREDIT_CARD",
        "EMAIL",
        "IBAN",
        "IP_ADDRESS",
        "SECRET",
        "US_SSN",
    ]
    assert attr(span.attributes, sc.PII_REDACTED_COUNT) == 7


def test_logs_bodies_nested_and_attributes() -> None:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    put(rl.resource.attributes, "deploy.owner", EMAIL)
    sl = rl.scope_logs.add()
    r1 = sl.log_records.add()
    r1.body.string_value = f"login by {EMAIL} from 81.2.69.161"
    r2 = sl.log_records.add()
    _set_any(r2.body, {"user": {"email": EMAIL, "phones": [PHONE, "n/a"]}, "count": 3})
    put(r2.attributes, "card", CARD)
    r3 = sl.log_records.add()
    r3.body.bytes_value = b"\xff\xfe raw " + EMAIL.encode() + b" \x80"
    r4 = sl.log_records.add()
    r4.body.string_value = "nothing to see"
    make().process(req, RequestContext())
    assert r1.body.string_value == "login by [REDACTED:EMAIL] from [REDACTED:IP_ADDRESS]"
    assert any_value_to_python(r2.body) == {
        "user": {"email": "[REDACTED:EMAIL]", "phones": ["[REDACTED:PHONE]", "n/a"]},
        "count": 3,
    }
    assert attr(r2.attributes, "card") == "[REDACTED:CREDIT_CARD]"
    assert attr(r2.attributes, sc.PII_REDACTED_COUNT) == 3
    assert r3.body.bytes_value == b"\xff\xfe raw [REDACTED:EMAIL] \x80"
    assert r4.body.string_value == "nothing to see" and get(r4.attributes, sc.PII_REDACTED_COUNT) is None
    assert EMAIL.encode() not in req.SerializeToString()


def test_metric_data_points_and_exemplars_are_redacted_not_annotated() -> None:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    m = rm.scope_metrics.add().metrics.add()
    m.name = "requests"
    dp = m.sum.data_points.add()
    dp.as_int = 1
    put(dp.attributes, "user.email", EMAIL)
    put(dp.exemplars.add().filtered_attributes, "client.ip", "8.8.4.4")
    h = rm.scope_metrics[0].metrics.add()
    h.name = "latency"
    put(h.histogram.data_points.add().attributes, "caller", PHONE)
    tel = SelfTelemetry()
    make(tel).process(req, RequestContext())
    assert attr(dp.attributes, "user.email") == "[REDACTED:EMAIL]"
    assert get(dp.attributes, sc.PII_REDACTED_COUNT) is None
    assert attr(dp.exemplars[0].filtered_attributes, "client.ip") == "[REDACTED:IP_ADDRESS]"
    assert attr(h.histogram.data_points[0].attributes, "caller") == "[REDACTED:PHONE]"
    assert tel.value("otel_receiver_pii_redactions_total", {"type": "EMAIL"}) == 1
    assert tel.value("otel_receiver_pii_redactions_total", {"type": "PHONE"}) == 1


def test_counter_per_type_and_two_instances_share_the_registry() -> None:
    tel = SelfTelemetry()
    a, b = make(tel), make(tel, default_action="mask")
    asyncio.run(a.start())  # the warm-up request is not counted
    assert tel.total("otel_receiver_pii_redactions_total") == 0
    a.process(trace_request({"x": f"{EMAIL} {EMAIL}"}), RequestContext())
    b.process(trace_request({"x": CARD}), RequestContext())
    assert tel.value("otel_receiver_pii_redactions_total", {"type": "EMAIL"}) == 2
    assert tel.value("otel_receiver_pii_redactions_total", {"type": "CREDIT_CARD"}) == 1
    # Again: the processor keeps the counter's child per type after its first use.
    a.process(trace_request({"y": EMAIL}), RequestContext())
    assert tel.value("otel_receiver_pii_redactions_total", {"type": "EMAIL"}) == 3


def test_second_pass_adds_to_existing_annotation() -> None:
    req = trace_request({"x": EMAIL})
    make().process(req, RequestContext())
    put(the_span(req).attributes, "y", CARD)
    make().process(req, RequestContext())
    attrs = the_span(req).attributes
    assert attr(attrs, sc.PII_REDACTED_COUNT) == 2
    assert attr(attrs, sc.PII_REDACTED_TYPES) == ["CREDIT_CARD", "EMAIL"]
    assert attr(attrs, sc.PII_REDACTED_COUNTS) == [1, 1]
    put(attrs, "z", f"{EMAIL} and {PHONE}")
    make().process(req, RequestContext())
    assert attr(attrs, sc.PII_REDACTED_COUNT) == 4
    assert attr(attrs, sc.PII_REDACTED_TYPES) == ["CREDIT_CARD", "EMAIL", "PHONE"]
    assert attr(attrs, sc.PII_REDACTED_COUNTS) == [1, 2, 1]
    assert sum(kv.key == sc.PII_REDACTED_COUNTS for kv in attrs) == 1


def test_annotations_appended_as_bytes_are_what_the_objects_hold() -> None:
    """The annotations of an item that holds none yet are appended to its bytes and
    merged into its object; one whose bytes hold the keys' prefix anywhere (here in a
    value) goes through the objects. Either way, the patched wire is the batch."""
    for text in (f"mail {EMAIL}", f"mail {EMAIL}, see pii.redacted.count"):
        req = trace_request({"note": text})
        req.resource_spans[0].resource.attributes.add(key="owner").value.string_value = EMAIL
        context = RequestContext()
        wire = req.SerializeToString()
        context.set_wire(req, wire, from_client=True)
        make().process(req, context)
        for attributes in (the_span(req).attributes, req.resource_spans[0].resource.attributes):
            assert attr(attributes, sc.PII_REDACTED_COUNT) == 1
            assert attr(attributes, sc.PII_REDACTED_TYPES) == ["EMAIL"]
            assert attr(attributes, sc.PII_REDACTED_COUNTS) == [1]
            assert sum(kv.key == sc.PII_REDACTED_COUNT for kv in attributes) == 1
        patched = context.wire_for(req)
        assert patched is not None and patched is not wire
        assert ExportTraceServiceRequest.FromString(patched) == req
    logs = ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add()
    record.body.string_value = f"user {EMAIL} logged in"
    context = RequestContext()
    context.set_wire(logs, logs.SerializeToString())
    make().process(logs, context)
    assert attr(record.attributes, sc.PII_REDACTED_TYPES) == ["EMAIL"]
    assert ExportLogsServiceRequest.FromString(context.wire_for(logs) or b"") == logs


def test_recurring_tallies_reuse_their_encoding_per_field() -> None:
    """One processor annotates spans, a resource and a log record whose tallies repeat:
    each gets its own counts, encoded for its own attributes field."""
    proc = make()
    texts = [EMAIL, EMAIL.replace("@", "2@"), f"{EMAIL} {EMAIL.replace('@', '3@')} {PHONE}", EMAIL]
    one_email = (1, ["EMAIL"], [1])
    expected = [one_email, one_email, (3, ["EMAIL", "PHONE"], [2, 1]), one_email]
    for _ in range(2):
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.add(key="owner").value.string_value = EMAIL
        spans = rs.scope_spans.add().spans
        for text in texts:
            spans.add().attributes.add(key="note").value.string_value = text
        context = RequestContext()
        context.set_wire(req, req.SerializeToString(), from_client=True)
        proc.process(req, context)
        for span, (count, types, counts) in zip(spans, expected, strict=True):
            assert attr(span.attributes, sc.PII_REDACTED_COUNT) == count
            assert attr(span.attributes, sc.PII_REDACTED_TYPES) == types
            assert attr(span.attributes, sc.PII_REDACTED_COUNTS) == counts
        assert attr(rs.resource.attributes, sc.PII_REDACTED_COUNTS) == [1]
        assert ExportTraceServiceRequest.FromString(context.wire_for(req) or b"") == req
        logs = ExportLogsServiceRequest()
        record = logs.resource_logs.add().scope_logs.add().log_records.add()
        record.body.string_value = f"user {EMAIL} logged in"
        context = RequestContext()
        context.set_wire(logs, logs.SerializeToString())
        proc.process(logs, context)
        assert attr(record.attributes, sc.PII_REDACTED_COUNTS) == [1]
        assert ExportLogsServiceRequest.FromString(context.wire_for(logs) or b"") == logs


def test_counts_per_type_follow_the_types() -> None:
    req = trace_request({"note": f"{EMAIL}, cc {EMAIL.replace('@', '2@')}, tel {PHONE}"})
    make().process(req, RequestContext())
    attrs = the_span(req).attributes
    assert attr(attrs, sc.PII_REDACTED_TYPES) == ["EMAIL", "PHONE"]
    assert attr(attrs, sc.PII_REDACTED_COUNTS) == [2, 1]
    assert attr(attrs, sc.PII_REDACTED_COUNT) == 3


# --- the prefilter gives the same result as looking at everything ------------------------------


def test_prefiltered_result_equals_full_scan() -> None:
    traces = generate_trace_requests(
        3, 100, seed=3, pii_fraction=0.3, start_time_ns=1_700_000_000_000_000_000
    )
    logs = generate_logs_requests(2, 100, seed=3, pii_fraction=0.3, start_time_ns=1_700_000_000_000_000_000)
    for original in [*traces, *logs]:
        fast = type(original)()
        fast.CopyFrom(original)
        full = type(original)()
        full.CopyFrom(original)
        proc = shared()
        proc.process(fast, RequestContext())
        reference = make()
        reference.scanner = None  # no prefilter: every resource, scope and item is walked
        reference.process(full, RequestContext())
        assert fast == full
        assert fast != original or "[REDACTED" not in str(full)


def test_clean_request_is_untouched_byte_for_byte() -> None:
    req = generate_trace_requests(1, 100, seed=5, pii_fraction=0.0, start_time_ns=1)[0]
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                assert get(span.attributes, sc.PII_REDACTED_COUNT) is None
    before = req.SerializeToString()
    make().process(req, RequestContext())
    assert req.SerializeToString() == before


# --- custom detectors ------------------------------------------------------------------------


def employee_checksum(value: str) -> bool:
    """Test validator: the last digit is the sum of the others mod 10."""
    digits = [int(c) for c in value if c.isdigit()]
    return sum(digits[:-1]) % 10 == digits[-1]


def test_custom_detector_with_module_validator() -> None:
    proc = make(
        custom_detectors=[
            {
                "name": "employee_id",
                "type": "EMPLOYEE_ID",
                "pattern": r"\bEMP-\d{6}\b",
                "validator": "tests.test_pii_redaction:employee_checksum",
            }
        ]
    )
    req = trace_request({"note": "EMP-123455 and EMP-123456"})
    proc.process(req, RequestContext())
    assert attr(the_span(req).attributes, "note") == "[REDACTED:EMPLOYEE_ID] and EMP-123456"


def test_custom_detector_validator_from_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "acme_validators.py").write_text("def badge(v):\n    return v.endswith('7')\n")
    dist = tmp_path / "acme_validators-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-validators\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """\
            [otel_receiver.pii_validators]
            acme_badge = acme_validators:badge
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    proc = make(
        custom_detectors=[
            {"name": "badge", "type": "BADGE", "pattern": r"B#\d{4}", "validator": "acme_badge"}
        ]
    )
    req = trace_request({"note": "B#1237 B#1238"})
    proc.process(req, RequestContext())
    assert attr(the_span(req).attributes, "note") == "[REDACTED:BADGE] B#1238"
    sys.modules.pop("acme_validators", None)


def test_custom_detector_value_group_and_action() -> None:
    proc = make(
        custom_detectors=[{"name": "ticket", "type": "TICKET", "pattern": r"ticket #(?P<value>\d{5})"}],
        actions={"TICKET": "hash"},
        hash_key=HASH_KEY,
    )
    req = trace_request({"note": "see ticket #48213"})
    proc.process(req, RequestContext())
    assert attr(the_span(req).attributes, "note").startswith("see ticket #[TICKET:")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"custom_detectors": [{"name": "x", "type": "X", "pattern": "(a"}]}, "not a valid RE2 pattern"),
        ({"custom_detectors": [{"name": "x", "type": "X", "pattern": "(a)\\1"}]}, "not a valid RE2 pattern"),
        (
            {"custom_detectors": [{"name": "x", "type": "X", "pattern": "a", "validator": "nope:fn"}]},
            "cannot be imported",
        ),
        (
            {"custom_detectors": [{"name": "x", "type": "X", "pattern": "a", "validator": "no_such_ep"}]},
            "entry point",
        ),
        ({"custom_detectors": [{"name": "email", "type": "X", "pattern": "a"}]}, "duplicate"),
        ({"disabled_detectors": ["EMAIL", "nonsense"]}, "unknown detectors"),
        ({"actions": {"NOPE": "mask"}}, "unknown types"),
        ({"phone_regions": ["XX"]}, "unknown phone regions"),
        ({"blocked_key_patterns": ["(?<=x)"]}, "not a valid RE2 pattern"),
        ({"unknown_key": 1}, "Extra inputs"),
    ],
)
def test_config_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PiiRedactionConfig.model_validate(config)


def test_ner_without_presidio_is_a_clear_config_error() -> None:
    pytest.importorskip("re2")
    try:
        import presidio_analyzer  # noqa: F401
    except ImportError:
        with pytest.raises(ValidationError, match=r"presidio-analyzer.*\[ner\]"):
            PiiRedactionConfig.model_validate({"ner": {"enabled": True}})
    else:
        pytest.skip("presidio_analyzer is installed here; the NER path is exercised instead")


def test_relaxed_anchor_is_a_superset() -> None:
    assert relax_assertions(r"^\bEMP-\d{6}\b$") == r"EMP-\d{6}"
    assert relax_assertions(r"[\b^$]x\\b") == r"[\b^$]x\\b"


# --- failure is closed and never logs values ---------------------------------------------------


def test_a_failing_validator_masks_the_value_and_logs_no_value(caplog: pytest.LogCaptureFixture) -> None:
    proc = make(
        custom_detectors=[
            {
                "name": "boom",
                "type": "BOOM",
                "pattern": r"BOOM-\w+",
                "validator": "tests.test_pii_redaction:explode",
            }
        ]
    )
    req = trace_request({"note": f"BOOM-x {EMAIL}"})
    with caplog.at_level(logging.DEBUG):
        proc.process(req, RequestContext())
    assert attr(the_span(req).attributes, "note") == "[REDACTED:ERROR]"
    assert EMAIL not in caplog.text and "BOOM-x" not in caplog.text
    assert "note" in caplog.text  # a plain key name is logged to help debugging


def explode(value: str) -> bool:
    raise RuntimeError(f"cannot handle {value}")


def test_orjson_round_trip_of_numbers_and_unicode() -> None:
    raw = json.dumps(
        {"t": "héllo ✓ " + EMAIL, "n": 1.5, "big": 12, "nested": [None, True]}, ensure_ascii=False
    )
    out, _ = redact(raw)
    assert out is not None
    assert orjson.loads(out) == {"t": "héllo ✓ [REDACTED:EMAIL]", "n": 1.5, "big": 12, "nested": [None, True]}


def test_keyvalue_helper_types() -> None:
    kv = KeyValue(key="k")
    _set_any(kv.value, {"a": [1, "b"]})
    assert any_value_to_python(kv.value) == {"a": [1, "b"]}


@pytest.mark.parametrize("length", [11, 49, 65, 90, 97, 122, 200, 8320 + 16, 12416 + 3])
def test_value_starting_with_a_number_whatever_its_length_byte(length: int) -> None:
    """A string value starts right after its length varint, whose last byte can be a digit or
    a letter: the request prefilter must still see the number at the start of the value."""
    for lead in ("4111111111111111", "4155550132", "(415) 555-0132"):
        value = (lead + " " + "x" * length)[: max(length, len(lead))]
        req = trace_request({"k": value})
        shared().process(req, RequestContext())
        assert lead not in attr(the_span(req).attributes, "k"), (length, lead)


def test_map_keys_holding_values_are_redacted() -> None:
    req = ExportLogsServiceRequest()
    record = req.resource_logs.add().scope_logs.add().log_records.add()
    _set_any(record.body, {EMAIL: {"visits": 3}, "plain": "x"})
    put(record.attributes, f"seen {PHONE}", True)
    shared().process(req, RequestContext())
    assert any_value_to_python(record.body) == {"[REDACTED:EMAIL]": {"visits": 3}, "plain": "x"}
    assert attr(record.attributes, "seen [REDACTED:PHONE]") is True
    assert EMAIL.encode() not in req.SerializeToString()


def test_ner_integration_with_a_stand_in_analyzer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Presidio needs a spaCy model download, impossible here, so a stand-in module with
    Presidio's interface (``AnalyzerEngine().analyze(text=..., entities=..., language=...,
    score_threshold=...)`` returning objects with start/end/entity_type in characters)
    exercises our side: config acceptance, prefilter bypass, character-to-byte offsets, merge
    with regex hits."""
    import types

    class Result:
        def __init__(self, start: int, end: int, entity_type: str) -> None:
            self.start, self.end, self.entity_type = start, end, entity_type

    class AnalyzerEngine:
        def analyze(
            self, text: str, entities: list[str], language: str, score_threshold: float
        ) -> list[Result]:
            assert entities == ["PERSON"] and language == "en" and score_threshold == 0.5
            name = "Zoë Müller"
            i = text.find(name)
            return [Result(i, i + len(name), "PERSON")] if i >= 0 else []

    fake = types.ModuleType("presidio_analyzer")
    fake.AnalyzerEngine = AnalyzerEngine  # type: ignore[attr-defined]
    fake.__spec__ = importlib.machinery.ModuleSpec("presidio_analyzer", None)
    monkeypatch.setitem(sys.modules, "presidio_analyzer", fake)
    proc = make(ner={"enabled": True, "entities": ["PERSON"], "score_threshold": 0.5})
    assert proc.scanner is None  # no anchor can prove a text free of names
    req = trace_request({"note": f"Grüße von Zoë Müller, {EMAIL}", "other": "nothing"})
    proc.process(req, RequestContext())
    attrs = the_span(req).attributes
    assert attr(attrs, "note") == "Grüße von [REDACTED:PERSON], [REDACTED:EMAIL]"
    assert attr(attrs, "other") == "nothing"
    assert attr(attrs, sc.PII_REDACTED_TYPES) == ["EMAIL", "PERSON"]


def test_drop_removes_the_smallest_enclosing_entry() -> None:
    proc = shared(actions={"PHONE": "drop"})
    doc = {"contact": {"phone": PHONE, "name": "x"}, "list": ["keep", f"call {PHONE}"]}
    req = trace_request({"args": json.dumps(doc), "plain": f"tel {PHONE}"})
    proc.process(req, RequestContext())
    attrs = the_span(req).attributes
    assert json.loads(attr(attrs, "args")) == {"contact": {"name": "x"}, "list": ["keep"]}
    assert attr(attrs, "plain") is None
    logs = ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add()
    _set_any(record.body, {"user": {"phone": PHONE, "id": 7}, "tags": ["a", PHONE]})
    proc.process(logs, RequestContext())
    assert any_value_to_python(record.body) == {"user": {"id": 7}, "tags": ["a"]}
    assert attr(record.attributes, sc.PII_REDACTED_COUNT) == 2


def test_locate_flags_every_item_and_field_a_match_overlaps() -> None:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(3):
        span = ss.spans.add()
        put(span.attributes, "a", f"first-{i}")
        put(span.attributes, "b", f"second-{i}")
    buf = req.SerializeToString()
    end_of_span0 = buf.index(b"second-0") + len(b"second-0")
    start_of_span1 = buf.index(b"first-1")
    found = locate(buf, [(end_of_span0 - 2, start_of_span1 + 2)])
    assert found == {(0, 0, 0): {(9, 1)}, (0, 0, 1): {(9, 0)}}
    assert locate(buf, [(buf.index(b"second-2"), buf.index(b"second-2") + 1)]) == {(0, 0, 2): {(9, 1)}}
    assert locate(buf, []) == {}


def test_overlapping_hits_keep_the_higher_priority_then_the_longer() -> None:
    low, high = Detector("low", "A", "x", (), priority=1), Detector("high", "B", "x", (), priority=5)

    def resolved(hits: list[Hit]) -> list[tuple[int, int, str]]:
        return [(h.start, h.end, h.detector.name) for h in _resolve(hits)]

    overlapping = [Hit(10, 20, low), Hit(0, 5, low), Hit(12, 18, high), Hit(30, 40, low), Hit(35, 50, low)]
    assert resolved(overlapping) == [(0, 5, "low"), (12, 18, "high"), (35, 50, "low")]
    # Hits that only touch are all kept, in order.
    assert resolved([Hit(30, 40, low), Hit(0, 5, high), Hit(5, 9, low)]) == [
        (0, 5, "high"),
        (5, 9, "low"),
        (30, 40, "low"),
    ]


# --- the JSON-string check ---------------------------------------------------------------------


def test_the_json_string_check_in_c_agrees_with_its_reference() -> None:
    from processors.pii_redaction import engine

    if engine._prefilter is None:
        pytest.skip("built without the C prefilter")
    rng = random.Random(5)
    alphabet = ['"', "\\", "a", " ", ":", "{", "}", "@", "x"]
    for _ in range(20_000):
        buf = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24))).encode()
        cuts = sorted(rng.randrange(0, len(buf) + 1) for _ in range(2 * rng.randrange(0, 3)))
        spans = list(zip(cuts[::2], cuts[1::2], strict=True))
        in_c = engine._prefilter.inside_json_strings(buf, spans)
        assert in_c == engine.json_strings_hold(buf, spans), (buf, spans)
    with pytest.raises(ValueError):
        engine._prefilter.inside_json_strings(b"ab", [(1, 3)])
