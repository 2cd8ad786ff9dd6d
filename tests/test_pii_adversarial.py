"""pii_redaction under hostile input: bounded time, no crash, nothing leaks.

Time bounds are generous (seconds for a megabyte) so a loaded CI machine passes; the point
is that nothing is super-linear: every pattern runs on RE2 (linear time), and
Python code only touches validated candidates.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_receiver.attributes import any_value_to_python, get
from otel_receiver.component import RequestContext
from semconv import attributes as sc
from tests.test_pii_redaction import EMAIL, make, put, shared, trace_request

MB = 1 << 20


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def one_value(req: ExportTraceServiceRequest, key: str = "x") -> Any:
    v = get(req.resource_spans[0].scope_spans[0].spans[0].attributes, key)
    return None if v is None else any_value_to_python(v)


@pytest.mark.parametrize(
    "filler",
    [
        "lorem ipsum dolor sit amet ",  # clean prose
        "1 2 3 4 5 6 7 8 9 0 ",  # separated digits: candidates everywhere
        "4111111111111111 ",  # valid card numbers back to back
        "a" * 63 + "@",  # e-mail shapes that never complete
        "-----BEGIN PRIVATE KEY----- ",  # unterminated blocks
        "sk-" + "A1" * 20 + " ",  # secrets back to back
        "eyJhbGciOiJIUzI1NiJ9." * 3 + " ",  # JWT-shaped, invalid
        "+1 (415) 555-0132 ",  # valid phones back to back
        "2024-01-15 10:30:00 ",  # timestamps
        # the shapes the C matchers (_matchers.h) walk: domains of endless labels, runs of
        # card groups past 19 digits, key prefixes whose runs stay short or never end
        "a@b.",
        "x.y-z.",
        "4111 1111 ",
        "sk-ant-api03-x ",
        "sk-",
        "AKIA",
        "_password \t",  # names whose [:=] never comes
        "pwd=abcde ",  # values one character short
        "_api_key:",  # names, separators and values run together
    ],
)
def test_megabyte_string_is_bounded(filler: str) -> None:
    text = (filler * (MB // len(filler) + 1))[:MB] + " mail " + EMAIL
    req = trace_request({"x": text})
    elapsed = timed(lambda: shared().process(req, RequestContext()))
    assert elapsed < 10, elapsed
    out = one_value(req)
    assert EMAIL not in out
    assert "4111111111111111" not in out and "555-0132" not in out


def test_many_attributes_and_spans() -> None:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(2000):
        span = ss.spans.add()
        for j in range(20):
            put(span.attributes, f"k{j}", f"user{i}-{j}@gmail.com" if j == 7 else f"value {i} {j}")
    elapsed = timed(lambda: shared().process(req, RequestContext()))
    assert elapsed < 20, elapsed
    assert b"@gmail.com" not in req.SerializeToString()


def test_deeply_nested_log_body_is_masked_beyond_the_depth_limit() -> None:
    req = ExportLogsServiceRequest()
    record = req.resource_logs.add().scope_logs.add().log_records.add()
    node = record.body
    # Each map level is three protobuf messages deep; upb refuses to decode beyond 100, so a
    # receiver never sees deeper bodies than this.
    for _ in range(30):
        kv = node.kvlist_value.values.add()
        kv.key = "child"
        node = kv.value
    node.string_value = EMAIL
    shallow = record.attributes.add()
    shallow.key = "note"
    shallow.value.string_value = f"hi {EMAIL}"
    shared(max_depth=10).process(req, RequestContext())
    data = req.SerializeToString()
    assert EMAIL.encode() not in data
    assert b"[REDACTED:BLOCKED_KEY]" in data  # the part beyond depth 10 is masked whole
    parsed = ExportLogsServiceRequest()
    parsed.ParseFromString(data)  # still a valid message
    assert get(record.attributes, "note").string_value == "hi [REDACTED:EMAIL]"


def test_deeply_nested_json() -> None:
    deep: Any = {"email": EMAIL}
    for _ in range(300):
        deep = {"n": [deep]}
    too_deep = "[" * 5000 + json.dumps(EMAIL) + "]" * 5000  # beyond orjson's limit: scanned as text
    req = trace_request({"a": json.dumps(deep), "b": too_deep})
    elapsed = timed(lambda: shared().process(req, RequestContext()))
    assert elapsed < 5
    a, b = one_value(req, "a"), one_value(req, "b")
    assert EMAIL not in a and EMAIL not in b
    json.loads(a)  # still valid JSON
    assert b == "[" * 5000 + '"[REDACTED:EMAIL]"' + "]" * 5000


def test_invalid_utf8_bytes_values() -> None:
    rng = random.Random(1)
    junk = bytes(rng.randrange(256) for _ in range(MB))
    payload = junk[: MB // 2] + b" " + EMAIL.encode() + b" \xc3\x28 " + junk[MB // 2 :]
    req = ExportLogsServiceRequest()
    record = req.resource_logs.add().scope_logs.add().log_records.add()
    record.body.bytes_value = payload
    put(record.attributes, "raw", [b"\xff\xfe\xfd", b"ok " + EMAIL.encode()])
    elapsed = timed(lambda: shared().process(req, RequestContext()))
    assert elapsed < 10
    assert EMAIL.encode() not in req.SerializeToString()
    assert record.body.bytes_value.startswith(junk[:1000])
    assert get(record.attributes, sc.PII_REDACTED_COUNT).int_value == 2


@pytest.mark.parametrize(
    ("pattern", "subject"),
    [
        (r"(a+)+b", "a" * 200_000),
        (r"(a|aa)*c", "a" * 200_000),
        (r"(\w+\s?)*$", "word " * 40_000 + "!"),
        (r"(x+x+)+y", "x" * 100_000),
    ],
)
def test_catastrophic_backtracking_patterns_run_in_linear_time(pattern: str, subject: str) -> None:
    proc = make(custom_detectors=[{"name": "evil", "type": "EVIL", "pattern": pattern}])
    req = trace_request({"x": subject + " " + EMAIL})
    elapsed = timed(lambda: proc.process(req, RequestContext()))
    assert elapsed < 5, elapsed
    assert EMAIL not in one_value(req)


def test_hostile_keys_and_lookalike_flood() -> None:
    attrs = {f"k{i}" + "é" * 50: "v" for i in range(500)}
    attrs["password" * 1000] = "hunter2"
    attrs["note"] = " ".join(f"{i:04d}-{i:04d}-{i:04d}" for i in range(50_000))  # dash-joined digits
    req = trace_request(attrs)
    elapsed = timed(lambda: shared().process(req, RequestContext()))
    assert elapsed < 10
    assert one_value(req, "password" * 1000) == "[REDACTED:BLOCKED_KEY]"
