"""pii_redaction's C prefilter (``_prefilter.c``) against the RE2 scan of every anchor.

The prefilter's contract: every match of an anchor of the enabled detectors, and every
framed key a key rule matches, overlaps a range ``PrefilteredScanner.matches`` returns
(``locate`` then flags the field). The reference is ``RequestScanner``, one RE2 regex of
all the anchors over the whole buffer, which the processor used before. The inputs mix
the fragments each family looks for (numbers with separators, labels, secrets' prefixes,
framed and JSON keys, protobuf length bytes that are digits) with random bytes, then
mutate them, so that the edges of each hand-written check are crossed.
"""

from __future__ import annotations

import logging
import random

import pytest

from bench.workload import generate_trace_requests
from otel_receiver.component import ComponentSettings
from otel_receiver.spanscan import locate
from otel_receiver.telemetry import SelfTelemetry
from processors.pii_redaction import PiiRedactionConfig, factory
from processors.pii_redaction.detectors import key_anchors, key_pattern_stays_in_key
from processors.pii_redaction.engine import PrefilteredScanner, RequestScanner, request_scanner

_prefilter = pytest.importorskip("processors.pii_redaction._prefilter")

FRAGMENTS = [
    b"4111 1111 1111 1111",
    b"4111-1111-1111-1111",
    b"378282246310005",
    b"219-45-6789",
    b"219 45 6789",
    b"SSN: 219456789",
    b"social security number \xe2\x80\x94 219456789",
    b"+1 (415) 555-0132",
    b"(415) 555-0132",
    b"415.555.0132",
    b"4155550132",
    b"+44 20 7946 0958",
    b"020 7946 0958",
    b"(0)30 1234567",
    b"06 12 34 56 78",
    b"612 345 678",
    b"81.2.69.160",
    b"2a00:1450:4007:80e::200e",
    b"::1",
    b"2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    b"DE89 3704 0044 0532 0130 00",
    b"GB82WEST12345698765432",
    b"de89 3704 0044",
    b"jane.doe@mailbox.org",
    b"sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
    b"sk-ant-api03-abc",
    b"AKIAIOSFODNN7EXAMPL3",
    b"AIzaSyA1234567890abcdefghijklmnopqrstu",
    b"aws_secret_access_key",
    b"AWS-SECRET",
    b"ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    b"github_pat_11ABC",
    b"glpat-xxxx",
    b"glagent-",
    b"xoxb-123",
    b"xapp-1-A",
    b"https://hooks.slack.com/services/T000/B000",
    b"sk_live_abc",
    b"rk_test_abc",
    b"whsec_abc",
    b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIx",
    b"-----BEGIN PRIVATE KEY-----",
    b"Authorization: Bearer abcDEF0123456789ghiJKL",
    b"token \t abcdefghijklmnop1234",
    b"Basic dXNlcjpwYXNz",
    b"postgres://app:S3cret@db:5432/x",
    b"https://x.io/?a=1&access_token=abc",
    b"?client_secret=x",
    b"password = hunter2",
    b"PASSWD:x",
    b"api-key='x'",
    b"private_key=",
    b"auth_token :",
    b"access-token=",
    b"pwd=",
    b'"password": "x"',
    b'"db_password"  :',
    b'\\"api_key\\": \\"x\\"',
    b'{"authorization":"x"}',
    b"\x0a\x08password\x12",
    b"\x0a\x1bhttp.request.header.cookie\x12",
    b"\x0a\x0bAuthorization\x12",
    b"\x0a\x85\x01" + b"k" * 120 + b"_secret\x12",
    b"\x0a\x32" + b"0123456789",
    b"\x12\x0b\x0a\x09123456789",
    b"\x2a\x0c4111111111111111",
    b"\x3a\x81\x01\x31" + b"4155550132",
    b"2026-11-21T09:12:03Z",
    b"claude-3-5-sonnet-20241022",
    b"v1.2.3.4",
    b"call_dcbda95c2b2093705084",
]
NOISE = b"0123456789 .-()/+:=@_\"'\\\x0a\x12\x2a\x3a\x80\xff\x00\t\nabcsnkwAJBKWzyeS?&<>"


def fuzz_buffers(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 6)):
            if rng.random() < 0.6:
                parts.append(rng.choice(FRAGMENTS))
            else:
                parts.append(bytes(rng.choice(NOISE) for _ in range(rng.randint(0, 12))))
        buf = bytearray(b"".join(parts))
        for _ in range(rng.randint(0, 4)):  # mutations: the edges of each check
            if not buf:
                break
            i = rng.randrange(len(buf))
            op = rng.random()
            if op < 0.4:
                buf[i] = rng.choice(NOISE)
            elif op < 0.7:
                del buf[i]
            else:
                buf.insert(i, rng.choice(NOISE))
        out.append(bytes(buf))
    return out


def make_processor(**config: object) -> object:
    settings = ComponentSettings("pii_redaction", SelfTelemetry(), logging.getLogger("test"))
    return factory.create(PiiRedactionConfig(**config), settings)


def reference_scanner(proc: object) -> RequestScanner:
    return RequestScanner(proc.redactor.anchors())  # type: ignore[attr-defined]


def uncovered(reference: list[tuple[int, int]], found: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Reference matches that overlap no range found."""
    return [(s, e) for s, e in reference if not any(fs < e and s < fe for fs, fe in found)]


CONFIGS = [
    {},
    {"phone_regions": ["US", "GB", "DE", "FR", "NL", "ES", "IT", "IN", "BR", "JP"]},
    {"redact_private_ips": True, "blocked_key_patterns": [r"(?i).*token.*", r"x-[a-z]+-id"]},
]


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "many-regions", "other-keys"])
def test_every_anchor_match_is_covered_on_fuzzed_input(config: dict[str, object]) -> None:
    proc = make_processor(**config)
    scanner = proc.scanner  # type: ignore[attr-defined]
    assert isinstance(scanner, PrefilteredScanner)
    assert scanner._rest is None  # every default anchor and key rule runs in C
    reference = reference_scanner(proc)
    failures = []
    for buf in fuzz_buffers(seed=11, count=6000):
        for _ in range(2):  # the second pass answers keys from the cache
            missed = uncovered(reference.matches(buf), scanner.matches(buf))
            if missed:
                failures.append((buf, [buf[s:e] for s, e in missed]))
    assert not failures[:5], f"{len(failures)} buffers with uncovered anchor matches"


def test_fragments_are_found_at_the_buffer_edges() -> None:
    proc = make_processor(phone_regions=["US", "GB", "DE", "FR", "NL"])
    scanner, reference = proc.scanner, reference_scanner(proc)  # type: ignore[attr-defined]
    for fragment in FRAGMENTS:
        for buf in (fragment, b" " + fragment, fragment + b" ", b"x" + fragment + b"\x12"):
            expected = reference.matches(buf)
            assert not uncovered(expected, scanner.matches(buf)), buf
    # A clean text gives nothing to verify.
    assert scanner.matches(b"The quick brown fox jumps over the lazy dog. " * 20) == []


@pytest.mark.parametrize("fraction", [0.0, 0.1, 1.0])
def test_the_workload_flags_the_same_fields(fraction: float) -> None:
    proc = make_processor()
    scanner, reference = proc.scanner, reference_scanner(proc)  # type: ignore[attr-defined]
    for request in generate_trace_requests(30, 100, 7, fraction, 1_763_700_000_000_000_000):
        buf = request.SerializeToString()
        assert locate(buf, scanner.matches(buf)) == locate(buf, reference.matches(buf))


def test_key_decisions_are_learnt_once_per_key() -> None:
    proc = make_processor()
    scanner = proc.scanner  # type: ignore[attr-defined]
    buf = b"\x0a\x08password\x12\x03\x0a\x01x" + b'{"role": "user", "api_key": "k"}'
    first = scanner.matches(buf)
    learnt = scanner._prefilter.key_count()
    assert learnt == 3  # password, role, api_key
    assert scanner.matches(buf) == first
    assert scanner._prefilter.key_count() == learnt
    hits = {buf[s:e] for s, e in first}
    assert b"\x0a\x08password\x12" in hits and b'"api_key":' in hits
    assert not any(b"role" in h for h in hits)


def test_key_patterns_that_can_match_control_bytes_keep_the_re2_scan() -> None:
    assert key_pattern_stays_in_key(r"(?i).*secret.*")
    for pattern in (r"a\sb", r"[^x]+", r'say"', r"\x41", r"[[:cntrl:]]"):
        assert not key_pattern_stays_in_key(pattern)
    proc = make_processor(blocked_key_patterns=[r"(?i)api\skey"])
    scanner = proc.scanner  # type: ignore[attr-defined]
    assert scanner._rest is not None and scanner._rest.anchors == key_anchors([r"(?i)api\skey"])
    buf = b'{"api key": 1, "API\tKEY": 2}'
    assert not uncovered(reference_scanner(proc).matches(buf), scanner.matches(buf))
    assert len(scanner.matches(buf)) == 2


def test_custom_detectors_keep_the_re2_scan() -> None:
    proc = make_processor(custom_detectors=[{"name": "ticket", "type": "TICKET", "pattern": r"TCK-\d{6}"}])
    scanner = proc.scanner  # type: ignore[attr-defined]
    assert scanner._rest is not None and scanner._rest.anchors == [r"TCK-\d{6}"]
    buf = b"see TCK-123456 and jane@example.org"
    assert [buf[s:e] for s, e in scanner.matches(buf)] == [b"TCK-123456", b"@example.o"]


def test_without_the_extension_every_anchor_runs_in_re2(monkeypatch: pytest.MonkeyPatch) -> None:
    import processors.pii_redaction.engine as engine

    proc = make_processor()
    monkeypatch.setattr(engine, "_prefilter", None)
    scanner = request_scanner(proc.redactor)  # type: ignore[attr-defined]
    assert isinstance(scanner, RequestScanner)
    assert scanner.anchors == proc.redactor.anchors()  # type: ignore[attr-defined]
