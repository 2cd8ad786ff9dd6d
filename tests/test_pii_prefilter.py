"""pii_redaction's C prefilter (``_prefilter.c``) against the RE2 scan of every anchor.

The prefilter's contract: every match of an anchor of the enabled detectors, and every
framed key a key rule matches (a protobuf key framed with its own length, in UTF-8, as a
request that parsed holds them), overlaps a range ``PrefilteredScanner.matches`` returns
(``locate`` then flags the field). The reference is ``RequestScanner``, one RE2 regex of
all the anchors over the whole buffer, which the processor used before. The inputs mix
the fragments each family looks for (numbers with separators, labels, secrets' prefixes,
framed and JSON keys, protobuf length bytes that are digits) with random bytes, then
mutate them, so that the edges of each hand-written check are crossed.
"""

from __future__ import annotations

import logging
import random
import re

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from bench.workload import generate_trace_requests
from otel_receiver.component import ComponentSettings, RequestContext
from otel_receiver.spanscan import locate
from otel_receiver.telemetry import SelfTelemetry
from processors.pii_redaction import PiiRedactionConfig, factory
from processors.pii_redaction.detectors import bytes_in_matches, key_anchors, key_pattern_stays_in_key
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
    b"\x0a\x0dAuthorization\x12",
    b"\x0a\x85\x01" + b"k" * 126 + b"_secret\x12",
    b"\x0a\x07pass\xc3\xa9d\x12\x0a\x09password\x12",  # UTF-8 key; a length that disagrees
    b"\x0a\x32" + b"0123456789",
    b"\x12\x0b\x0a\x09123456789",
    b"\x2a\x0c4111111111111111",
    b"\x3a\x81\x01\x31" + b"4155550132",
    b"2026-11-21T09:12:03Z",
    b"claude-3-5-sonnet-20241022",
    b"v1.2.3.4",
    b"10.2.3.4",
    b"192.168.1.20",
    b"172.31.0.7",
    b"169.254.10.1",
    b"127.0.0.1",
    b"0.1.2.3",
    b"\x0a\x31" + b"92.168.1.1",  # a length byte '1' before a public address
    b"\x0a\x3110.2.3.4",
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


class ReferenceScanner:
    """``RequestScanner`` of every anchor, reading protobuf keys as the C pass does: a
    framing (0x0a, length, key, 0x12) is a key only when its length is the key's and the
    key is UTF-8, as every KeyValue key of a request that parsed is. The ipv4 detector's
    anchor runs apart: its matches count unless the validator turns down the address they
    are part of (``_unredacted_quad``)."""

    def __init__(self, redactor: object) -> None:
        detectors = redactor.detectors  # type: ignore[attr-defined]
        ipv4 = [d for d in detectors if d.name == "ipv4"]
        self.validate_ipv4 = ipv4[0].validate if ipv4 else None
        ipv4_anchors = list(ipv4[0].anchors) if ipv4 else []
        self.scanner = RequestScanner([a for a in redactor.anchors() if a not in ipv4_anchors])  # type: ignore[attr-defined]
        self.ipv4 = RequestScanner(ipv4_anchors) if ipv4_anchors else None
        self.ipv4_pattern = re.compile(ipv4[0].pattern.encode()) if ipv4 else None

    def matches(self, buf: bytes) -> list[tuple[int, int]]:
        out = [(s, e) for s, e in self.scanner.matches(buf) if not _false_key_framing(buf[s:e])]
        if self.ipv4 is not None:
            out += [(s, e) for s, e in self.ipv4.matches(buf) if not self._unredacted_quad(buf, s, e)]
        return sorted(out)

    def _unredacted_quad(self, buf: bytes, s: int, e: int) -> bool:
        """Whether no address the ipv4 validator redacts can hold the anchor match at s:e.
        Such an address lies in the run of digits and dots around it: read from the run's
        first byte and, when that byte may be the string's length (after a value tag or a
        length byte), from the next. (Framing after a string can only lengthen its last
        group or add groups.)"""
        while s > 0 and buf[s - 1] in _DIGIT_OR_DOT:
            s -= 1
        while e < len(buf) and buf[e] in _DIGIT_OR_DOT:
            e += 1
        readings = [buf[s:e]]
        if s > 0 and (buf[s - 1] >= 0x80 or buf[s - 1] in (0x0A, 0x12, 0x2A, 0x3A)):
            readings.append(buf[s + 1 : e])
        assert self.validate_ipv4 is not None and self.ipv4_pattern is not None
        return not any(
            self.validate_ipv4(text, m.start(), m.end())
            for text in readings
            for m in self.ipv4_pattern.finditer(text)
        )


_DIGIT_OR_DOT = frozenset(b"0123456789.")


def _false_key_framing(match: bytes) -> bool:
    if len(match) < 3 or match[0] != 0x0A or match[-1] != 0x12:
        return False
    length, shift, i = 0, 0, 1
    while i < len(match) - 1 and i <= 3:
        length |= (match[i] & 0x7F) << shift
        shift += 7
        i += 1
        if match[i - 1] < 0x80:
            break
    key = match[i:-1]
    try:
        key.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return len(key) != length


def reference_scanner(proc: object) -> ReferenceScanner:
    return ReferenceScanner(proc.redactor)  # type: ignore[attr-defined]


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
def test_the_workload_flags_every_field_the_anchors_flag_and_few_others(fraction: float) -> None:
    proc = make_processor()
    scanner, reference = proc.scanner, reference_scanner(proc)  # type: ignore[attr-defined]
    flagged = expected = 0
    for request in generate_trace_requests(30, 100, 7, fraction, 1_763_700_000_000_000_000):
        buf = request.SerializeToString()
        found, wanted = locate(buf, scanner.matches(buf)), locate(buf, reference.matches(buf))
        for path, fields in wanted.items():
            assert path in found and fields <= found[path], path
        flagged += sum(len(f) for f in found.values())
        expected += sum(len(f) for f in wanted.values())
    # The C windows are not confirmed by RE2: their shapes must stay close to the anchors
    # (each extra field costs a search of its string). Measured 9.9 against 9.8 per request.
    assert flagged <= expected * 1.05 + 1, (flagged, expected)


def test_an_iban_shape_needs_a_registry_country() -> None:
    scanner = make_processor().scanner  # type: ignore[attr-defined]
    # Base32 and hex ids hold the IBAN shape: two letters, two digits, eight alphanumerics.
    for clean in (b"NP65NVXBRX26XZWPGUEI===", b"QT47BM7HZDUUF6GQ", b"DC494B4AC214", b"xx89 3704 0044"):
        assert scanner.matches(b" " + clean + b" ") == [], clean
    for iban in (b"DE89370400440532013000", b"gb82 west 1234", b"NO9386011117947"):
        assert scanner.matches(b" " + iban + b" ") != [], iban


def _ipv4_validator(proc: object) -> object:
    return next(d.validate for d in proc.redactor.detectors if d.name == "ipv4")  # type: ignore[attr-defined]


def test_private_addresses_are_skipped_only_while_the_validator_turns_them_down() -> None:
    """The C pass leaves out dotted quads in 0/8, 10/8, 127/8, 169.254/16, 172.16/12 and
    192.168/16: the validator of the running Python must turn every one down, and with
    ``redact_private_ips`` nothing is left out. Addresses at each range's edges, in text
    and as a protobuf string whose length byte is a digit (then read without it too)."""
    firsts = (0, 1, 9, 10, 11, 99, 100, 126, 127, 128, 168, 169, 170, 171, 172, 173, 191, 192, 193, 255)
    seconds = (0, 1, 15, 16, 17, 30, 31, 32, 167, 168, 169, 253, 254, 255)
    addresses = [f"{a}.{b}.7.9".encode() for a in firsts for b in seconds] + [b"010.1.2.3", b"10.01.2.3"]
    for config, may_skip in (({}, True), ({"redact_private_ips": True}, False)):
        proc = make_processor(**config)
        validate = _ipv4_validator(proc)
        skipped = 0
        for address in addresses:
            redacted = bool(validate(address, 0, len(address)))  # type: ignore[operator]
            texts = [b"host " + address + b" is up"]
            # strings of 48 and 49 bytes: their length byte, '0' or '1', joins the first group
            for n in (48, 49):
                value = (address + b" " * (n - len(address))).decode()
                texts.append(AnyValue(string_value=value).SerializeToString())
            for buf in texts:
                flagged = bool(proc.scanner.matches(buf))  # type: ignore[attr-defined]
                assert flagged or not redacted, (config, buf)
            skipped += not proc.scanner.matches(b"host " + address + b" is up")  # type: ignore[attr-defined]
        assert (skipped > 0) == may_skip, (config, skipped)
    # "192.168.1.1" in bytes, "92.168.1.1" (public) in the string after its length byte '1'
    proc = make_processor()
    framed = AnyValue(string_value="92.168.1.1" + " up" * 13).SerializeToString()
    assert framed[1:4] == b"192", framed
    assert proc.scanner.matches(framed), framed  # type: ignore[attr-defined]
    assert proc.redactor.find(framed[2:]), framed  # type: ignore[attr-defined]


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


def test_a_framed_key_counts_when_its_length_and_utf8_agree_with_it() -> None:
    prefilter = make_processor().scanner._prefilter  # type: ignore[attr-defined]
    prefilter.learn(b"password\xc3\xa9", True)
    prefilter.learn(b"k" * 126 + b"_secret", True)
    for key_like in (
        b"\x0a\x0apassword\xc3\xa9\x12",  # "passwordé", a UTF-8 key
        b"\x0a\x85\x01" + b"k" * 126 + b"_secret\x12",  # a length of two bytes
    ):
        assert prefilter.scan(b"\x01" + key_like)[1], key_like
    rng = random.Random(5)
    trace_ids = [bytes(rng.randrange(0x80, 0x100) for _ in range(16)) for _ in range(50)]
    for not_a_key in [
        b"\x0a\x07password\x12",  # the length is not the key's
        b"\x0a\x0apassword\xff\xfe\x12",  # not UTF-8
        *(b"\x0a\x10" + trace_id + b"\x12\x08abcdefgh" for trace_id in trace_ids),  # a span's ids
    ]:
        _, key_hits, unknown = prefilter.scan(b"\x01" + not_a_key)
        assert not key_hits and not unknown, not_a_key


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


# --- The redactor's text path: scan_text, then each detector on the regions around its windows


def _found(redactor: object, buf: bytes, text_path: bool) -> tuple[list[tuple[int, int, str]], bool]:
    """Hits and key marker of one string, on the text path or on the RE2 Set path."""
    return _found_with(redactor, buf, redactor._text_finder if text_path else None)  # type: ignore[attr-defined]


def _found_with(redactor: object, buf: bytes, finder: object) -> tuple[list[tuple[int, int, str]], bool]:
    """Hits and key marker of one string with ``finder`` as the redactor's text finder
    (None: the RE2 Set path)."""
    own = redactor._text_finder  # type: ignore[attr-defined]
    redactor._text_finder = finder  # type: ignore[attr-defined]
    try:
        work, marker = redactor._candidates(buf)  # type: ignore[attr-defined]
        hits = redactor._find_in(buf, work) if work else []  # type: ignore[attr-defined]
    finally:
        redactor._text_finder = own  # type: ignore[attr-defined]
    return [(h.start, h.end, h.detector.name) for h in hits], marker


def workload_strings(count: int) -> list[bytes]:
    out = []
    for request in generate_trace_requests(count, 100, 3, 0.5, 1_763_700_000_000_000_000):
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    out.extend(
                        kv.value.string_value.encode()
                        for kv in span.attributes
                        if kv.value.HasField("string_value")
                    )
    return out


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "many-regions", "other-keys"])
def test_the_text_path_finds_what_the_set_of_every_pattern_finds(config: dict[str, object]) -> None:
    """Same hits (detector, span) and key markers, string by string: the regions
    lose no match, and the anchors hold every pattern's matches (this found the 7-digit
    grouped phone numbers of regions without a national prefix, which no anchor held)."""
    redactor = make_processor(**config).redactor  # type: ignore[attr-defined]
    assert redactor._text_finder is not None
    buffers = fuzz_buffers(seed=5, count=6000) + workload_strings(6) + [b" ".join(FRAGMENTS)]
    failures = []
    found = 0
    for buf in buffers:
        (text, text_marker), (set_path, set_marker) = (
            _found(redactor, buf, True),
            _found(redactor, buf, False),
        )
        found += len(set_path)
        # The C pass also frames protobuf keys (0x0a len key 0x12) in text: a marker more
        # costs a JSON parse, one less would skip a key rule.
        if text != set_path or (set_marker and not text_marker):
            failures.append((buf, text, set_path))
    assert found > 1000
    assert not failures[:3], f"{len(failures)} strings differ"


def test_a_match_reaches_beyond_its_window_to_the_bytes_it_cannot_hold() -> None:
    redactor = make_processor().redactor  # type: ignore[attr-defined]
    local = b"jane.doe.with.a.rather.long.local.part.of.sixty.characters.x"
    buf = b'{"note": "write to ' + local + b'@mailbox.org today"}'
    hits, _ = _found(redactor, buf, True)
    assert hits == [(buf.index(local), buf.index(b" today"), "email")]
    # A PEM block can hold any byte: its region is the whole string.
    pem = b"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"
    assert _found(redactor, b"key: " + pem + b" done", True)[0] == [(5, 5 + len(pem), "private_key")]


def test_custom_detectors_and_key_rules_on_the_text_path() -> None:
    proc = make_processor(custom_detectors=[{"name": "ticket", "type": "TICKET", "pattern": r"TCK-\d{6}"}])
    redactor = proc.redactor  # type: ignore[attr-defined]
    buf = b'see TCK-123456, jane@example.org, {"password": "x"}'
    hits, marker = _found(redactor, buf, True)
    assert [(buf[s:e], name) for s, e, name in hits] == [
        (b"TCK-123456", "ticket"),
        (b"jane@example.org", "email"),
    ]
    assert marker  # the "password" key: JSON is parsed so that the key rule applies
    assert _found(redactor, buf, False) == (hits, marker)
    assert _found(redactor, b'{"content": "caf\\u00e9 \\u0040 x"}', True)[1]  # escaped ASCII


def test_grouped_numbers_of_seven_or_eight_digits_are_found_where_regions_write_them() -> None:
    # Italy's numbers bring in the pattern for numbers without a trunk prefix; libphonenumber
    # takes this one as German.
    proc = make_processor(phone_regions=["DE", "IT"])
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.attributes.add(key="gen_ai.prompt", value=AnyValue(string_value="my mobile is 512 345 97, thanks"))
    proc.process_traces(request, RequestContext())  # type: ignore[attr-defined]
    assert span.attributes[0].value.string_value == "my mobile is [REDACTED:PHONE], thanks"


def test_the_bytes_a_pattern_can_match_are_read_with_re2s_classes() -> None:
    high = set(range(0x80, 0x100))
    assert bytes_in_matches(r"\b\d{3}[ \-]\d{2}\b") == set(b"0123456789 -")
    assert bytes_in_matches(r"(?i)ab") == set(b"abAB") | high  # case folding reaches k/s-like letters
    assert bytes_in_matches(r"x(?i:y)") == set(b"xyY") | high
    negated = bytes_in_matches(r"[^\s&]")
    assert negated is not None
    assert 0x0B in negated and 0xC3 in negated  # RE2's \s has no \v; any non-ASCII character
    assert not {0x20, 0x09, 0x0A, 0x0D, 0x0C, ord("&")} & negated
    assert bytes_in_matches(r"a.b") == set(range(256))
    assert bytes_in_matches(r"x{0}y") == {ord("y")}
    assert bytes_in_matches(r"\pL+") is None  # RE2-only syntax: any byte may be in a match


def test_the_key_cache_keeps_every_decision_as_it_grows() -> None:
    scanner = make_processor().scanner  # type: ignore[attr-defined]
    prefilter = scanner._prefilter
    keys = [f"attr.{i}.{'x' * (i % 60)}".encode() for i in range(3000)]  # inline and longer keys
    for i, key in enumerate(keys):
        prefilter.learn(key, i % 7 == 0)
    assert prefilter.key_count() == len(keys)
    for i, key in enumerate(keys):
        buf = b'{"' + key + b'": 1}'
        _, hits, unknown = prefilter.scan(buf)
        assert not unknown and bool(hits) == (i % 7 == 0), key
    prefilter.learn(keys[1], True)  # a decision can change
    assert prefilter.scan(b'{"' + keys[1] + b'": 1}')[1]
    assert prefilter.key_count() == len(keys)


# --- The AVX2 scan against the byte-at-a-time scan

# Each handler's words, with the letters around a trigger that the AVX2 scan checks before
# calling it; case is flipped at random below.
HANDLER_WORDS = [
    b"ghp_",
    b"gho_",
    b"ghu_",
    b"ghs_",
    b"ghr_",
    b"github_pat_",
    b"sk_live_",
    b"rk_test_",
    b"whsec_",
    b"sk-",
    b"sk-ant-",
    b"glpat-",
    b"gloas-",
    b"glagent-",
    b"xoxa-",
    b"xoxb-",
    b"xoxp-",
    b"xoxo-",
    b"xoxs-",
    b"xoxr-",
    b"xapp-1-",
    b"-----BEGIN",
    b"eyJhbGciOi",
    b"AKIA",
    b"ASIA",
    b"ABIA",
    b"ACCA",
    b"AGPA",
    b"AIDA",
    b"AROA",
    b"AIPA",
    b"ANPA",
    b"ANVA",
    b"APKA",
    b"AIza",
    b"bearer ",
    b"basic ",
    b"token ",
    b"aws_secret",
    b"aws-secret",
    b"aws.secret",
    b"awssecret",
    b"hooks.slack.com/services/",
    b"DE89",
    b"gb82 ",
    b"NO93",
    b"ssn ",
    b"+1 ",
    b"(0)",
    b"0",
    b"00",
    b"000",
    b"0000",
    b"1.2.3.4",
]
SUFFIX = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH+/-._~"
NUMBER_BYTES = b"0123456789 .-()/+aZ"
FILLER = b"the quick brown fox jumps over a lazy dog; "  # moves the rest across block edges


def variant_buffers(seed: int, count: int) -> list[bytes]:
    """Buffers of 80-400 bytes (the AVX2 scan's blocks) mixing handler words with random
    case, numbers made of digits and separators, fragments and noise, at every offset."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        parts = [bytes(rng.choice(FILLER) for _ in range(rng.randrange(64)))]
        while sum(map(len, parts)) < rng.randint(80, 400):
            pick = rng.random()
            if pick < 0.4:
                word = bytes(
                    c ^ 0x20 if chr(c).isalpha() and rng.random() < 0.3 else c
                    for c in rng.choice(HANDLER_WORDS)
                )
                parts.append(word + bytes(rng.choice(SUFFIX) for _ in range(rng.randrange(40))))
            elif pick < 0.7:
                parts.append(bytes(rng.choice(NUMBER_BYTES) for _ in range(rng.randrange(1, 16))))
            elif pick < 0.85:
                parts.append(rng.choice(FRAGMENTS))
            else:
                parts.append(bytes(rng.choice(NOISE) for _ in range(rng.randrange(12))))
        out.append(b"".join(parts))
    return out


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "many-regions", "other-keys"])
def test_the_vector_scan_finds_what_the_byte_scan_finds(config: dict[str, object]) -> None:
    if not _prefilter.use_vector(True):
        pytest.skip("this CPU has no AVX2: only the byte-at-a-time scan runs")
    prefilter = make_processor(**config).scanner._prefilter  # type: ignore[attr-defined]
    requests = generate_trace_requests(4, 100, 7, 0.5, 1_763_700_000_000_000_000)
    buffers = variant_buffers(seed=3, count=4000) + [r.SerializeToString() for r in requests]
    differ = []
    try:
        for buf in buffers:
            vector = prefilter.scan(buf), prefilter.scan_text(buf)
            _prefilter.use_vector(False)
            scalar = prefilter.scan(buf), prefilter.scan_text(buf)
            _prefilter.use_vector(True)
            if vector != scalar:
                differ.append(buf)
    finally:
        _prefilter.use_vector(True)
    assert not differ[:3], f"{len(differ)} buffers scanned differently"


# --- The detectors the C pass finds by itself (_matchers.h) against RE2 and the validators


def _luhn_completed(body: str) -> str:
    total = 0
    for k, ch in enumerate(reversed(body)):
        d = int(ch)
        if k % 2 == 0:  # doubled once the check digit is appended
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def native_edge_buffers(seed: int, count: int) -> list[bytes]:
    """Strings built around the shapes the native matchers decide: e-mail local parts and
    labels at their limits, top-level domains of 1-26 letters and file extensions, card
    numbers of 11-21 digits with one or two kinds of separator (most pass Luhn), API keys
    around their minimum lengths, secret assignments (names in any case, the characters
    RE2's case folding adds, quotes, spaces and values around six characters), and word
    bytes glued to either edge."""
    rng = random.Random(seed)
    edge = b" .-_@:/\"'\\,;()[]{}=+%a1Z\xc3\xa9\x00\n"

    def chars(alphabet: bytes, lo: int, hi: int) -> bytes:
        return bytes(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))

    def email() -> bytes:
        local = chars(b"abcXYZ019._%+-", 0, 8) if rng.random() < 0.9 else b"l" * rng.randint(240, 260)
        labels = [chars(b"abc019-", 0, 6) for _ in range(rng.randint(0, 3))]
        tld = rng.choice([b"png", b"JPG", b"py", b"org", b"io", b"museum"]) if rng.random() < 0.4 else None
        tld = tld if tld is not None else chars(b"abcdefXYZ", 1, 26)
        sep = b"." if rng.random() < 0.9 else rng.choice([b"..", b"-", b""])
        return local + b"@" + sep.join([*labels, tld]) if labels else local + b"@" + tld

    def card() -> bytes:
        issuers = ["4", "51", "22", "34", "37", "6011", "65", "35", "36", "300", "38", "62", "50"]
        prefix = rng.choice([*issuers, "1", "9"])  # and two prefixes no network issues
        length = rng.randint(11, 21)
        body = prefix + "".join(rng.choice("0123456789") for _ in range(max(0, length - len(prefix) - 1)))
        digits = _luhn_completed(body) if rng.random() < 0.8 else body + rng.choice("0123456789")
        if rng.random() < 0.05:
            digits = digits[0] * len(digits)
        out = []
        seps = rng.choice([" ", "-", " -", "", ""])
        for k, ch in enumerate(digits):
            if k and seps and rng.random() < 0.3:
                out.append(rng.choice(seps))
            out.append(ch)
        return "".join(out).encode()

    def assignment() -> bytes:
        names = ["password", "passwd", "pwd", "secret", "client_secret", "api_key", "apikey", "api-key"]
        names += ["access_key", "auth-token", "access_token", "private_key", "passwords", "secrets", "tokens"]
        name = "".join(ch.upper() if rng.random() < 0.3 else ch for ch in rng.choice(names))
        if rng.random() < 0.1:  # the characters RE2's case folding adds to s and k
            name = name.replace("s", "\u017f", 1).replace("k", "\u212a", 1)
        lead = rng.choice([b"", b"", b"_", b"x_", b"x", b" ", b"\xc3\xa9", b"1"])
        quote = rng.choice([b"", b"", b'"', b"'"])
        op = rng.choice([b"=", b":", b"=", b" ", b"=>"])
        spaces = [rng.choice([b"", b"", b" ", b"  ", b"\t", b"\n", b"\x0b"]) for _ in range(2)]
        # Placeholders, masks and templates the validator turns down, a Kelvin sign that
        # lower() makes a 'k', and the UTF-8 that RE2 reads loosely or stops at.
        values = [b"null", b"changeme", b"PASSWORD", b"Redacted", b"xxxxxx", b"**..**", b"${DB_PASS}"]
        values += [b"{{pw}}", b"[REDACTED:SECRET]", b"cha\xe2\x84\xaageme", b"\xc5\xbfecret1"]
        values += [b"\xe0\x80\x80abcd", b"ab\xffcdefg"]
        value = rng.choice(values) if rng.random() < 0.4 else chars(b"abcXYZ019!$%*./\xc3\xa9", 3, 9)
        return lead + name.encode() + quote + spaces[0] + op + spaces[1] + quote + value + chars(edge, 0, 1)

    def key() -> bytes:
        if rng.random() < 0.4:
            return rng.choice([b"AKIA", b"ASIA", b"APKA", b"AKIB", b"akia"]) + chars(b"ABCXYZ0189", 15, 17)
        token = chars(b"abcdXYZW0189_-", 14, 26)
        prefixes = [b"sk-", b"sk-proj-", b"sk_", b"sk-ant-api03-", b"sk-ant-admin01-", b"sk-ant-api3-"]
        prefix = rng.choice(prefixes)
        return prefix + token

    out = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 5)):
            maker = rng.random()
            if maker < 0.3:
                piece = email()
            else:
                piece = card() if maker < 0.55 else assignment() if maker < 0.8 else key()
            parts.append(chars(edge, 0, 2) + piece + chars(edge, 0, 2))
        buf = bytearray(b"".join(parts))
        for _ in range(rng.randint(0, 2)):
            if buf:
                buf[rng.randrange(len(buf))] = rng.choice(edge)
        out.append(bytes(buf))
    return out


def test_the_native_matchers_find_what_re2_and_the_validators_find() -> None:
    """The text path with the native matchers against the same path handing every region
    to RE2 and the Python validators: the same hits, string by string."""
    from processors.pii_redaction.engine import _TextFinder

    redactor = make_processor().redactor  # type: ignore[attr-defined]
    native = redactor._text_finder  # type: ignore[attr-defined]
    assert native is not None
    in_c = [e for e in _prefilter.NATIVE_DETECTORS if e in {d.name for d in redactor.detectors}]  # type: ignore[attr-defined]
    assert sorted(in_c) == [
        "anthropic_api_key",
        "aws_access_key_id",
        "credit_card",
        "email",
        "openai_api_key",
        "secret_assignment",
    ]
    plain = _TextFinder.for_detectors(redactor.detectors, redactor.key_patterns, native=False)  # type: ignore[attr-defined]
    buffers = native_edge_buffers(seed=11, count=8000) + fuzz_buffers(seed=12, count=2000)
    buffers += workload_strings(4)
    failures = []
    found: dict[str, int] = {}
    for buf in buffers:
        in_c_hits, re2_hits = _found_with(redactor, buf, native)[0], _found_with(redactor, buf, plain)[0]
        if in_c_hits != re2_hits:
            failures.append((buf, in_c_hits, re2_hits))
        for _, _, name in re2_hits:
            found[name] = found.get(name, 0) + 1
    assert not failures[:3], f"{len(failures)} strings differ"
    # Enough of each detector's hits that the comparison means something.
    assert all(found.get(name, 0) >= 200 for name in in_c), sorted(found.items())


def test_native_detectors_need_their_tables_and_a_matcher() -> None:
    prefilter = _prefilter.Prefilter(_prefilter.FAMILIES["email"])
    email_bit = _prefilter.DETECTOR_BITS["email"]
    with pytest.raises(ValueError, match="native_checks"):
        prefilter.text_detectors([(email_bit, 0, None, True)])
    with pytest.raises(ValueError, match="placeholders"):
        prefilter.native_checks([("4", 13, 19)], ["png"], ["NULL"])
    prefilter.native_checks([("4", 13, 19)], ["png"], ["null"])
    with pytest.raises(ValueError, match="no native matcher"):
        prefilter.text_detectors([(_prefilter.DETECTOR_BITS["phone"], 0, None, True)])
    prefilter.text_detectors([(email_bit, 3, None, True)])
    work, _, _ = prefilter.scan_text(b"mail jane@mailbox.org or logo@2x.png")
    assert work == [(3, 5, 21)]
