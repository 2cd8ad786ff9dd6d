"""Built-in PII and secret detectors: a candidate regex, a prefilter anchor, and a validator.

Every detector has three parts:

* ``pattern``: an RE2 regex (linear time, no backtracking) that finds *candidates* in a
  UTF-8 string. A named group ``value`` marks the part to redact (e.g. the token after
  ``Bearer``); without it the whole match is redacted.
* ``anchor``: a regex that matches a *superset* of the pattern and is safe to run over the
  serialized protobuf bytes of a whole request (no word boundaries, since a string value is
  preceded by arbitrary length bytes). The processor proves a request clean with a single
  scan of all anchors before anything else runs.
* ``validate``: a check on each candidate (Luhn, mod-97, libphonenumber, ``ipaddress``,
  JWT header, ...). It receives the whole buffer and the candidate's byte span, and returns
  the spans to redact (possibly narrower, or several), so context and trimming are possible.

Validation uses the libraries made for it: ``python-stdnum`` (Luhn, IBAN, US SSN),
``phonenumbers`` (libphonenumber) and ``ipaddress``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.resources
import ipaddress
import re as stdlib_re
import re._constants as _sre  # the stdlib's regex parser, to read which bytes a pattern can match
import re._parser as _sre_parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson
import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum import luhn
from stdnum.us import ssn as stdnum_ssn

Span = tuple[int, int]
Validator = Callable[[bytes, int, int], list[Span]]
Normalizer = Callable[[str], str]

EMAIL = "EMAIL"
CREDIT_CARD = "CREDIT_CARD"
US_SSN = "US_SSN"
IBAN = "IBAN"
PHONE = "PHONE"
IP_ADDRESS = "IP_ADDRESS"
SECRET = "SECRET"
BLOCKED_KEY = "BLOCKED_KEY"

BUILTIN_TYPES = (EMAIL, CREDIT_CARD, US_SSN, IBAN, PHONE, IP_ADDRESS, SECRET)


@dataclass(frozen=True)
class Detector:
    name: str
    type: str
    pattern: str
    anchors: tuple[str, ...]
    validate: Validator | None = None
    normalize: Normalizer | None = None
    # Higher wins when validated matches of different detectors overlap.
    priority: int = 0
    description: str = ""
    # One of builtin_detectors(): its anchors have a hand-written prefilter (_prefilter.c).
    builtin: bool = False


def _whole(buf: bytes, start: int, end: int) -> list[Span]:
    return [(start, end)]


def _text(buf: bytes, start: int, end: int) -> str:
    return buf[start:end].decode("utf-8", "replace")


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def _is_word_byte(b: int) -> bool:
    return b == 0x5F or 0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A


# --- Validators -----------------------------------------------------------------------


def make_email_validator(include_documentation: bool) -> Validator:
    def validate(buf: bytes, start: int, end: int) -> list[Span]:
        text = _text(buf, start, end)
        local, _, domain = text.rpartition("@")
        if not local or len(text) > 254 or local.startswith(".") or local.endswith(".") or ".." in local:
            return []
        tld = domain.rsplit(".", 1)[-1]
        # Retina image names ("logo@2x.png") have the shape of an address but a file extension.
        if tld.lower() in _FILE_EXTENSIONS:
            return []
        if not include_documentation and _is_documentation_domain(domain):
            return []
        return [(start, end)]

    return validate


_validate_email = make_email_validator(include_documentation=True)
_validate_email_but_documentation = make_email_validator(include_documentation=False)


def _is_documentation_domain(domain: str) -> bool:
    # RFC 2606 / 6761 reserved names cannot be anyone's mailbox.
    lowered = domain.lower()
    return lowered in _RESERVED_DOMAINS or lowered.endswith(_RESERVED_SUFFIXES)


_RESERVED_DOMAINS = frozenset({"example.com", "example.org", "example.net"})
_RESERVED_SUFFIXES = (
    ".example",
    ".test",
    ".invalid",
    ".localhost",
    ".example.com",
    ".example.org",
    ".example.net",
)
_FILE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "pdf", "js", "css", "py"})

# Issuer prefixes (IIN ranges) of the card networks: a 16-digit number that passes Luhn but
# starts with, say, 1 or 9 is an order number or a timestamp, not a card.
_CARD_PREFIXES = (
    ("4", 13, 19),  # Visa
    ("51", 16, 16),
    ("52", 16, 16),
    ("53", 16, 16),
    ("54", 16, 16),
    ("55", 16, 16),
    ("22", 16, 16),
    ("23", 16, 16),
    ("24", 16, 16),
    ("25", 16, 16),
    ("26", 16, 16),
    ("27", 16, 16),
    ("34", 15, 15),
    ("37", 15, 15),  # Amex
    ("6011", 16, 19),
    ("644", 16, 19),
    ("645", 16, 19),
    ("646", 16, 19),
    ("647", 16, 19),
    ("648", 16, 19),
    ("649", 16, 19),
    ("65", 16, 19),  # Discover
    ("35", 16, 19),  # JCB
    ("36", 14, 19),
    ("300", 14, 14),
    ("301", 14, 14),
    ("302", 14, 14),
    ("303", 14, 14),
    ("304", 14, 14),
    ("305", 14, 14),
    ("38", 14, 14),
    ("39", 14, 14),  # Diners
    ("62", 16, 19),  # UnionPay
    ("50", 12, 19),
    ("56", 12, 19),
    ("57", 12, 19),
    ("58", 12, 19),
    ("63", 12, 19),
    ("67", 12, 19),  # Maestro
)


def _validate_card(buf: bytes, start: int, end: int) -> list[Span]:
    text = _text(buf, start, end)
    separators = {c for c in text if not c.isdigit()}
    if len(separators) > 1:
        return []
    digits = _digits(text)
    if not 12 <= len(digits) <= 19 or len(set(digits)) == 1:
        return []
    if not any(digits.startswith(p) and lo <= len(digits) <= hi for p, lo, hi in _CARD_PREFIXES):
        return []
    return [(start, end)] if luhn.is_valid(digits) else []


def _validate_ssn(buf: bytes, start: int, end: int) -> list[Span]:
    # stdnum rejects the never-issued areas (000, 666, 900-999), group 00, serial 0000
    # and the numbers known from advertising (078-05-1120, ...).
    return [(start, end)] if stdnum_ssn.is_valid(_digits(_text(buf, start, end))) else []


def _mod97_ok(text: str) -> bool:
    """The ISO 7064 check alone: cheap, and rejects 96 of 97 random candidates before
    python-stdnum checks the country's format."""
    compact = text.replace(" ", "")
    if len(compact) < 15 or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    try:
        return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
    except ValueError:
        return False


def _iban_ok(text: str) -> bool:
    return _mod97_ok(text) and stdnum_iban.is_valid(text)


def _validate_iban(buf: bytes, start: int, end: int) -> list[Span]:
    text = _text(buf, start, end)
    if _iban_ok(text):
        return [(start, end)]
    # The candidate may have swallowed a following upper-case word ("... 7034 THANKS"):
    # retry without its trailing space-separated groups.
    cut = end
    while True:
        space = buf.rfind(b" ", start, cut)
        if space <= start + 4:
            return []
        cut = space
        if _iban_ok(_text(buf, start, cut)):
            return [(start, cut)]


# ISO dates and timestamps ("2024-01-15 10", "2024/01/15") that libphonenumber would accept.
_DATE_LIKE = stdlib_re.compile(r"[12]\d{3}[-/.][01]?\d[-/.][0-3]?\d|[0-3]?\d[-/.][01]?\d[-/.][12]\d{3}")
_EXTENSION = stdlib_re.compile(r"\s?(?:x|ext\.?)\s?\d{1,5}$")

_NANP_REGIONS = frozenset(
    {
        "US",
        "CA",
        "AG",
        "AI",
        "AS",
        "BB",
        "BM",
        "BS",
        "DM",
        "DO",
        "GD",
        "GU",
        "JM",
        "KN",
        "KY",
        "LC",
        "MP",
        "MS",
        "PR",
        "SX",
        "TC",
        "TT",
        "VC",
        "VG",
        "VI",
    }
)
_PHONE_EXT = r"(?:\s?(?:x|ext\.?)\s?\d{1,5})?"
# Large counted repetitions ({6,200}) are avoided throughout: RE2 unrolls them into DFA states
# and, past its state budget, falls back to a far slower engine (measured 20x on 800 bytes).
# Candidates are shaped like phone numbers, so that dates, amounts and order numbers rarely
# reach libphonenumber (about 100 us per parse in pure Python).
_PHONE_INTERNATIONAL = (
    r"\+[1-9]\d{0,2}[ .\-]?(?:\(\d{1,5}\)[ .\-]?)?\d{1,5}(?:[ .\-/]?\d{1,6}){1,5}" + _PHONE_EXT
)
_PHONE_NANP = (
    r"(?:\b1[ .\-]?)?(?:\([2-9]\d{2}\)[ .\-]?|\b[2-9]\d{2}[ .\-])[2-9]\d{2}[ .\-]\d{4}"
    + _PHONE_EXT
    + r"\b|\b[2-9]\d{2}[2-9]\d{6}\b"
)
_PHONE_TRUNK = r"(?:\b0\d{1,4}|\(0\d{1,4}\))(?:[ .\-/]?\d{2,8}){1,4}" + _PHONE_EXT + r"\b"
# Regions without a national prefix (Italy, Spain, ...) write mobiles as plain 9-11 digits.
# Contiguous ones start at 3: numbers starting with 1 or 2 are mostly epoch seconds and ids.
_PHONE_NO_TRUNK = r"\b[3-9]\d{8,10}\b|\b[1-9]\d{2}[ .]\d{2,3}[ .]?\d{2,4}(?:[ .]\d{2,3})?\b"


def _without_national_prefix(region: str) -> bool:
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return meta is not None and not meta.national_prefix


def phone_pattern(regions: Sequence[str]) -> str:
    parts = [_PHONE_INTERNATIONAL]
    if any(r in _NANP_REGIONS for r in regions):
        parts.append(_PHONE_NANP)
    if any(r not in _NANP_REGIONS for r in regions):
        parts.append(_PHONE_TRUNK)
    if any(_without_national_prefix(r) for r in regions):
        parts.append(_PHONE_NO_TRUNK)
    return "|".join(f"(?:{p})" for p in parts)


_SSN_SHAPE = stdlib_re.compile(rb"\d{3}-\d{2}-\d{4}")
_DECIMAL = stdlib_re.compile(rb"\d+[.,]\d+")


def _glued(buf: bytes, start: int, end: int) -> bool:
    """A fragment of a dash-joined token (UUID, "ORD-2024-000123") or of a decimal number
    ("20.0269645", "1,299") is not a phone number."""
    if start >= 2 and buf[start - 1] in b"-.," and buf[start - 2 : start - 1].isalnum():
        return True
    return end + 1 < len(buf) and buf[end] in b"-.," and buf[end + 1 : end + 2].isalnum()


def make_phone_validator(regions: Sequence[str]) -> Validator:
    """libphonenumber decides; candidates that hold a date are split around it, and a
    candidate that does not parse as a whole is retried without its trailing groups."""
    region_list = list(regions) or ["US"]
    cache: dict[bytes, list[tuple[int, int]]] = {}

    def valid(text: str) -> bool:
        for region in [None] if text.startswith("+") else region_list:
            try:
                if phonenumbers.is_valid_number(phonenumbers.parse(text, region)):
                    return True
            except phonenumbers.NumberParseException:
                continue
        return False

    def spans_in(text: str) -> list[tuple[int, int]]:
        pieces: list[tuple[int, str]] = []
        last = 0
        for m in _DATE_LIKE.finditer(text):
            pieces.append((last, text[last : m.start()]))
            last = m.end()
        pieces.append((last, text[last:]))
        found: list[tuple[int, int]] = []
        for offset, piece in pieces:
            stripped = piece.rstrip(" .-/(")
            lead = len(stripped) - len(stripped.lstrip(" .-/)"))
            stripped = stripped[lead:]
            while sum(c.isdigit() for c in stripped) >= 7:
                if valid(stripped):
                    found.append((offset + lead, offset + lead + len(stripped)))
                    break
                ext = _EXTENSION.search(stripped)
                cut = (
                    ext.start() if ext else max(stripped.rfind(" "), stripped.rfind("-"), stripped.rfind("."))
                )
                if cut <= 0:
                    break
                stripped = stripped[:cut].rstrip(" .-/(")
        return found

    def validate(buf: bytes, start: int, end: int) -> list[Span]:
        raw = buf[start:end]
        if _glued(buf, start, end) or _SSN_SHAPE.fullmatch(raw) or _DECIMAL.fullmatch(raw):
            return []
        # Keyed by a digest so that no phone number is kept in memory as text.
        key = hashlib.blake2b(raw, digest_size=16).digest()
        rel = cache.get(key)
        if rel is None:
            rel = spans_in(raw.decode("ascii", "replace"))
            if len(cache) >= 8192:
                cache.clear()
            cache[key] = rel
        return [(start + a, start + b) for a, b in rel]

    return validate


# RFC 5737 and RFC 3849: the ranges reserved for documentation and examples.
_DOCUMENTATION_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.IPv4Network("192.0.2.0/24"),
    ipaddress.IPv4Network("198.51.100.0/24"),
    ipaddress.IPv4Network("203.0.113.0/24"),
    ipaddress.IPv6Network("2001:db8::/32"),
)


def _redactable_address(
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address, include_private: bool, include_documentation: bool
) -> bool:
    if addr.is_unspecified:
        return False
    if addr.is_global or include_private:
        return True
    return include_documentation and any(
        addr in net for net in _DOCUMENTATION_NETWORKS if net.version == addr.version
    )


def make_ipv4_validator(include_private: bool, include_documentation: bool = True) -> Validator:
    # Whether an address is redactable, by a digest of its text (no address is kept as
    # text): ipaddress's parse and is_global cost ~9 us, and the same few addresses (a
    # database host in every log line) recur.
    verdicts: dict[bytes, bool] = {}

    def redactable(raw: bytes) -> bool:
        key = hashlib.blake2b(raw, digest_size=16).digest()
        verdict = verdicts.get(key)
        if verdict is None:
            try:
                addr = ipaddress.IPv4Address(raw.decode("ascii"))
            except ValueError:
                verdict = False
            else:
                verdict = _redactable_address(addr, include_private, include_documentation)
            if len(verdicts) >= 4096:
                verdicts.clear()
            verdicts[key] = verdict
        return verdict

    def validate(buf: bytes, start: int, end: int) -> list[Span]:
        if not redactable(buf[start:end]):
            return []
        return _ipv4_context(buf, start, end)

    return validate


def _ipv4_context(buf: bytes, start: int, end: int) -> list[Span]:
    # "v1.2.3.4" / "version 1.2.3.4" and dotted sequences of five or more parts are versions/OIDs.
    before = buf[max(0, start - 8) : start].lower()
    if before.endswith((b"v", b"version ", b"version", b"ver ")):
        return []
    if end + 1 < len(buf) and buf[end : end + 1] == b"." and buf[end + 1 : end + 2].isdigit():
        return []
    if start >= 2 and buf[start - 1 : start] == b"." and buf[start - 2 : start - 1].isdigit():
        return []
    return [(start, end)]


def make_ipv6_validator(include_private: bool, include_documentation: bool = True) -> Validator:
    def validate(buf: bytes, start: int, end: int) -> list[Span]:
        spans = _validate_ipv6(buf, start, end)
        addr = ipaddress.IPv6Address(_text(buf, start, end)) if spans else None
        if addr is None or not _redactable_address(addr, include_private, include_documentation):
            return []
        return spans

    return validate


def _validate_ipv6(buf: bytes, start: int, end: int) -> list[Span]:
    raw = buf[start:end]
    # Eight groups (six before an embedded IPv4), or fewer around "::": anything else
    # ("10:30:00") is not an address.
    colons = raw.count(b":")
    if b"::" not in raw and colons != 7 and not (colons == 6 and b"." in raw):
        return []
    text = _text(buf, start, end)
    if sum(c not in ":." for c in text) < 3:
        return []
    # "std::vector", "Foo::bar": a letter or word glued to the candidate means code.
    if (start > 0 and (_is_word_byte(buf[start - 1]) or buf[start - 1] == 0x3A)) or (
        end < len(buf) and (_is_word_byte(buf[end]) or buf[end] == 0x3A)
    ):
        return []
    try:
        addr = ipaddress.IPv6Address(text)
    except ValueError:
        return []
    return [] if addr.is_unspecified else [(start, end)]


def _looks_random(token: str, min_len: int = 16) -> bool:
    """API keys mix digits and letters of both cases; words joined by dashes do not."""
    return (
        len(token) >= min_len
        and any(c.isdigit() for c in token)
        and any(c.isupper() for c in token)
        and any(c.islower() for c in token)
    )


def _validate_random_token(buf: bytes, start: int, end: int) -> list[Span]:
    text = _text(buf, start, end)
    body = text.split("_", 1)[-1] if "_" in text[:12] else text.split("-", 1)[-1]
    return [(start, end)] if _looks_random(body, 16) else []


def _validate_jwt(buf: bytes, start: int, end: int) -> list[Span]:
    header = buf[start:end].split(b".", 1)[0]
    try:
        decoded = base64.urlsafe_b64decode(header + b"=" * (-len(header) % 4))
        obj = orjson.loads(decoded)
    except (binascii.Error, ValueError):
        return []
    return [(start, end)] if isinstance(obj, dict) and ("alg" in obj or "typ" in obj) else []


_PLACEHOLDERS = frozenset({"null", "none", "true", "false", "redacted", "changeme", "password"})


def _validate_assignment(buf: bytes, start: int, end: int) -> list[Span]:
    value = _text(buf, start, end).strip("\"'")
    if (
        value.lower() in _PLACEHOLDERS
        or set(value) <= {"*", "x", "X", "."}
        or value.startswith(("${", "{{", "<", "[REDACTED"))
    ):
        return []
    return [(start, end)]


def _validate_basic(buf: bytes, start: int, end: int) -> list[Span]:
    """HTTP Basic credentials: base64 of printable ``user:password``."""
    try:
        decoded = base64.b64decode(buf[start:end], validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return []
    return [(start, end)] if ":" in decoded and decoded.isprintable() else []


def _validate_bearer(buf: bytes, start: int, end: int) -> list[Span]:
    token = _text(buf, start, end)
    return [(start, end)] if any(c.isdigit() for c in token) and any(c.isalpha() for c in token) else []


# --- Normalisers for the keyed hash: the same card written with or without spaces hashes alike


def _norm_digits(s: str) -> str:
    return _digits(s)


def _norm_lower(s: str) -> str:
    return s.lower()


def _norm_compact_upper(s: str) -> str:
    return s.replace(" ", "").upper()


# --- Anchors --------------------------------------------------------------------------

# Left context of number anchors (cards, phones), so that digits inside hex ids rarely
# trigger: a candidate not glued to a letter or digit is found through the non-alphanumeric
# byte before it. A string value can also start right after its length byte, which may be
# any byte: those are caught through the preceding field tag (0x0a AnyValue.string_value,
# 0x12 status message/event name, 0x2a span name/log body, 0x3a AnyValue.bytes_value) and a
# one- to four-byte length. Anchors run on bytes (RE2 Latin-1 mode), so \x80-\xff are bytes.
_VALUE_START = r"(?:[^0-9A-Za-z_]|[\x0a\x12\x2a\x3a][\x80-\xff]{0,3}[\x00-\x7f])"


def phone_anchors(regions: Sequence[str]) -> tuple[str, ...]:
    out = [r"\+\d(?:[ .\-()/]{0,2}\d){6}"]
    if any(r in _NANP_REGIONS for r in regions):
        out.append(r"\d{3}(?:\)[ .\-]?|[ .\-])\d{3}[ .\-]\d{4}")
        out.append(_VALUE_START + r"\d{10}")
    if any(r not in _NANP_REGIONS for r in regions):
        out.append(_VALUE_START + r"\(?0(?:[ .\-()/]{0,2}\d){6}")
    if any(_without_national_prefix(r) for r in regions):
        # _PHONE_NO_TRUNK's grouped form holds 7 digits at least ("612 34 56").
        out.append(_VALUE_START + r"\d(?:[ .]?\d){6}")
    return tuple(out)


def key_anchors(patterns: Sequence[str]) -> list[str]:
    """Anchors proving a key rule cannot apply: the key as a protobuf KeyValue key (tag 0x0a,
    length, key, then the value's tag 0x12) or as a JSON object key, plain or escaped inside
    another JSON string. Without this framing a rule like ``.*secret.*`` would fire on prose."""
    p = key_rules_regex(patterns)
    return [
        r"\x0a[\x00-\x7f]" + p + r"\x12",
        r"\x0a[\x80-\xff]{1,2}[\x00-\x7f]" + p + r"\x12",
        '"' + p + r'"\s*:',
        r'\\"' + p + r'\\"\s*:',
    ]


# The bytes a key is made of in the key rules' anchors: no control characters, quotes or
# backslashes, so that an anchor stays inside one key.
KEY_BYTE = r'[^\x00-\x1f"\\]'


def key_rules_regex(patterns: Sequence[str]) -> str:
    """The alternation of the key patterns, their dots kept inside one key."""
    return "(?:" + "|".join("(?:" + relax_assertions(x, dot=KEY_BYTE) + ")" for x in patterns) + ")"


# What a key pattern must avoid for its matches to hold only KEY_BYTE bytes (then the
# prefilter can find keys by their framing): classes or escapes that match control
# characters, quotes or backslashes.
_UNSAFE_IN_KEY_PATTERN = stdlib_re.compile(r'"|\\[sSWDxntrfvapPCQ0-7\\]|\[\^|\[:|[\x00-\x1f]')


def key_pattern_stays_in_key(pattern: str) -> bool:
    """True when every match of the relaxed ``pattern`` is made of KEY_BYTE bytes."""
    return pattern.isascii() and _UNSAFE_IN_KEY_PATTERN.search(pattern) is None


def _iban_countries() -> list[str]:
    data = importlib.resources.files("stdnum").joinpath("iban.dat").read_text()
    return sorted({line[:2] for line in data.splitlines() if line[:2].isalpha() and line[:2].isupper()})


# Country codes of the IBAN registry shipped with python-stdnum.
IBAN_COUNTRIES: tuple[str, ...] = tuple(_iban_countries())
_IBAN_CC = "(?:" + "|".join(IBAN_COUNTRIES) + ")"


def builtin_detectors(
    phone_regions: Sequence[str], include_private_ips: bool = False, include_documentation: bool = True
) -> list[Detector]:
    secret_token = r"[A-Za-z0-9_\-]"
    detectors = [
        Detector(
            "email",
            EMAIL,
            r"[A-Za-z0-9._%+\-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b",
            (r"@[A-Za-z0-9\-]+\.[A-Za-z]",),
            _validate_email if include_documentation else _validate_email_but_documentation,
            _norm_lower,
            5,
            "e-mail addresses",
        ),
        Detector(
            "credit_card",
            CREDIT_CARD,
            r"\b\d(?:[ \-]?\d){11,18}\b",
            (_VALUE_START + r"\d(?:[ \-]?\d){11}",),
            _validate_card,
            _norm_digits,
            8,
            "payment card numbers, 12-19 digits, Luhn and issuer prefix checked",
        ),
        Detector(
            "us_ssn",
            US_SSN,
            r"\b\d{3}-\d{2}-\d{4}\b|\b\d{3} \d{2} \d{4}\b"
            r"|(?i:ssn|social security(?: number)?)\W{1,5}(?P<value>\d{9})\b",
            # The label anchor holds the digits its pattern needs, so that a label alone does
            # not flag a field (and the prefilter finds it through the digits). Anchors run
            # on bytes: five non-word characters are up to 20 bytes.
            (r"\d{3}[ \-]\d{2}[ \-]\d{4}", r"(?i)(?:ssn|social security)(?: number)?\W{1,20}\d{9}"),
            _validate_ssn,
            _norm_digits,
            7,
            "US social security numbers, never-issued ranges excluded",
        ),
        Detector(
            "iban",
            IBAN,
            # Upper case, compact or grouped; and grouped in any case, as people type them.
            # A compact lower-case form is not looked for: hex ids ("de12ab34...") would
            # hit its anchor in every request (measured: +35% PII cost on the workload).
            r"\b" + _IBAN_CC + r"\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)\b"
            r"|(?i:\b" + _IBAN_CC + r"\d{2}(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?\b)",
            (
                _IBAN_CC + r"\d{2} ?[A-Z0-9]{4} ?[A-Z0-9]{4}",
                "(?i:" + _IBAN_CC + r"\d{2} [A-Z0-9]{4} [A-Z0-9]{4})",
            ),
            _validate_iban,
            _norm_compact_upper,
            9,
            "IBANs, country format and mod-97 checked",
        ),
        Detector(
            "phone",
            PHONE,
            phone_pattern(phone_regions),
            phone_anchors(phone_regions),
            make_phone_validator(phone_regions),
            _norm_digits,
            2,
            "phone numbers validated by libphonenumber",
        ),
        Detector(
            "ipv4",
            IP_ADDRESS,
            r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
            (r"\d\.\d{1,3}\.\d{1,3}\.\d",),
            make_ipv4_validator(include_private_ips, include_documentation),
            None,
            6,
            "IPv4 addresses",
        ),
        Detector(
            "ipv6",
            IP_ADDRESS,
            r"(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:\.\d{1,3}){0,3}",
            (r"[0-9A-Fa-f]::", r"::[0-9A-Fa-f]", r"(?:[0-9A-Fa-f]{1,4}:){7}"),
            make_ipv6_validator(include_private_ips, include_documentation),
            _norm_lower,
            6,
            "IPv6 addresses",
        ),
        # --- Secrets and credentials ---
        Detector(
            "openai_api_key",
            SECRET,
            r"\bsk-(?:proj-|svcacct-|admin-)?" + secret_token + r"{20,}",
            (r"sk-" + secret_token + r"{20}",),
            _validate_random_token,
            None,
            10,
            "OpenAI API keys",
        ),
        Detector(
            "anthropic_api_key",
            SECRET,
            r"\bsk-ant-(?:api|admin)\d\d-" + secret_token + r"{20,}",
            (r"sk-ant-",),
            None,
            None,
            11,
            "Anthropic API keys",
        ),
        Detector(
            "aws_access_key_id",
            SECRET,
            r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b",
            (r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|ROA|IPA|NPA|NVA|PKA)[A-Z0-9]{16}",),
            None,
            None,
            10,
            "AWS access key ids",
        ),
        Detector(
            "aws_secret_access_key",
            SECRET,
            r"(?i)aws[_\-.]?secret[_\-.]?(?:access[_\-.]?)?key[\"']?\s*[:=]\s*[\"']?(?P<value>[A-Za-z0-9/+]{40})\b",
            (r"(?i)aws[_\-.]?secret",),
            None,
            None,
            10,
            "AWS secret access keys next to their name",
        ),
        Detector(
            "github_token",
            SECRET,
            r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{22,}\b",
            (r"gh[pousr]_[A-Za-z0-9]{30}", r"github_pat_"),
            None,
            None,
            10,
            "GitHub tokens",
        ),
        Detector(
            "gitlab_token",
            SECRET,
            r"\bgl(?:pat|ptt|dt|rt|soat|cbt|imt|ft|oas|agent)-" + secret_token + r"{20,}",
            (r"gl(?:pat|ptt|dt|rt|soat|cbt|imt|ft|oas|agent)-",),
            None,
            None,
            10,
            "GitLab tokens",
        ),
        Detector(
            "slack_token",
            SECRET,
            r"\bxox[abposr]-[A-Za-z0-9\-]{10,}|\bxapp-\d-[A-Za-z0-9\-]{10,}"
            r"|https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]{20,}",
            (r"xox[abposr]-", r"xapp-\d-", r"hooks\.slack\.com/services/"),
            None,
            None,
            10,
            "Slack tokens and webhook URLs",
        ),
        Detector(
            "stripe_key",
            SECRET,
            r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|\bwhsec_[A-Za-z0-9]{20,}",
            (r"[sr]k_(?:live|test)_", r"whsec_"),
            None,
            None,
            10,
            "Stripe secret keys",
        ),
        Detector(
            "google_api_key",
            SECRET,
            r"\bAIza[0-9A-Za-z_\-]{35}\b",
            (r"AIza[0-9A-Za-z_\-]{30}",),
            None,
            None,
            10,
            "Google API keys",
        ),
        Detector(
            "jwt",
            SECRET,
            r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",
            (r"eyJ[A-Za-z0-9_\-]{8}",),
            _validate_jwt,
            None,
            10,
            "JSON Web Tokens",
        ),
        Detector(
            "private_key",
            SECRET,
            r"-----BEGIN[A-Z ]{0,30}PRIVATE KEY(?: BLOCK)?-----"
            r"(?:(?s:.)*?-----END[A-Z ]{0,30}PRIVATE KEY(?: BLOCK)?-----|(?s:.)*)",
            (r"-----BEGIN",),
            None,
            None,
            12,
            "PEM private key blocks (to the end of the text if unterminated)",
        ),
        Detector(
            "bearer_token",
            SECRET,
            r"(?i)\b(?:bearer|token)\s+(?P<value>[A-Za-z0-9\-._~+/]{16,}=*)",
            (r"(?i)(?:bearer|token)\s+[A-Za-z0-9\-._~+/]{16}",),
            _validate_bearer,
            None,
            9,
            "bearer tokens in headers and text",
        ),
        Detector(
            "basic_auth",
            SECRET,
            r"(?i)\bbasic\s+(?P<value>[A-Za-z0-9+/]{4,}={0,2})",
            (r"(?i)basic\s+[A-Za-z0-9+/]{4}",),
            _validate_basic,
            None,
            9,
            "HTTP Basic credentials in headers and text (base64 of user:password)",
        ),
        Detector(
            "url_credentials",
            SECRET,
            # the user may be empty: redis://:password@host
            r"\b[A-Za-z][A-Za-z0-9+.\-]{1,20}://[^\s:/@\"'<>]*:(?P<value>[^\s/@\"'<>]+)@",
            (r"://[^\s:/@\"'<>]*:[^\s/@\"'<>]+@",),
            None,
            None,
            9,
            "passwords in URLs and DSNs (scheme://user:password@host)",
        ),
        Detector(
            "url_token_param",
            SECRET,
            r"(?i)[?&](?:access_token|id_token|refresh_token|token|api_key|apikey|key|secret|password|sig|signature|auth|client_secret)=(?P<value>[^&\s#\"']{6,})",
            (
                r"(?i)[?&](?:access_token|id_token|refresh_token|token|api_key|apikey|key|secret|password|sig|signature|auth|client_secret)=",
            ),
            _validate_assignment,
            None,
            9,
            "credentials in URL query parameters",
        ),
        Detector(
            "secret_assignment",
            SECRET,
            r"(?i)(?:\b|_)(?:password|passwd|pwd|secret|client_secret|api[_\-]?key|access[_\-]?key|auth[_\-]?token|access[_\-]?token|private[_\-]?key)\b[\"']?\s*[:=]\s*[\"']?(?P<value>[^\s\"'`,;&<>]{6,})",
            (
                r"(?i)(?:password|passwd|pwd|secret|api[_\-]?key|access[_\-]?key|auth[_\-]?token|access[_\-]?token|private[_\-]?key)[\"']?\s*[:=]",
            ),
            _validate_assignment,
            None,
            8,
            "values assigned to password/secret/api_key names (connection strings, env files, configs)",
        ),
    ]
    return [replace(d, builtin=True) for d in detectors]


# Validators that look at nothing outside the candidate: their results can be cached.
CONTEXT_FREE_VALIDATORS: frozenset[Validator] = frozenset(
    {
        _validate_email,
        _validate_email_but_documentation,
        _validate_card,
        _validate_ssn,
        _validate_iban,
        _validate_jwt,
        _validate_random_token,
        _validate_bearer,
        _validate_basic,
        _validate_assignment,
    }
)


# The built-in detectors whose matches _prefilter.c finds by itself (_matchers.h), with the
# validator each must have for that: the C code implements these patterns and validators,
# and the tables below (native_tables), so a change to one of them must be made there too.
NATIVE_VALIDATORS: dict[str, Validator | None] = {
    "email": _validate_email,
    "credit_card": _validate_card,
    "openai_api_key": _validate_random_token,
    "anthropic_api_key": None,
    "aws_access_key_id": None,
    "secret_assignment": _validate_assignment,
}


def native_tables() -> tuple[list[tuple[str, int, int]], list[str], list[str]]:
    """What the C validators read: the card issuer prefixes, the file extensions that make
    an e-mail address a file name, and the placeholder values of a secret assignment
    (``Prefilter.native_checks``)."""
    return list(_CARD_PREFIXES), sorted(_FILE_EXTENSIONS), sorted(_PLACEHOLDERS)


def detector_names(regions: Sequence[str] = ("US",)) -> list[str]:
    return [d.name for d in builtin_detectors(regions)]


def validator_from_callable(fn: Callable[[str], bool]) -> Validator:
    """Adapt a user validator ``fn(candidate_text) -> bool`` to the span protocol."""

    def validate(buf: bytes, start: int, end: int) -> list[Span]:
        return [(start, end)] if fn(_text(buf, start, end)) else []

    return validate


# Zero-width assertions removed from a user pattern to get its prefilter anchor: dropping an
# assertion only widens what a regex matches, so the anchor is a superset of the pattern.
def relax_assertions(pattern: str, dot: str | None = None) -> str:
    out: list[str] = []
    i = 0
    in_class = False
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if not in_class and nxt in "bBAz":
                i += 2
                continue
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            out.append(c)
        elif c == "[":
            in_class = True
            out.append(c)
            # A leading "]" or "^]" is literal inside a class.
            if i + 1 < n and pattern[i + 1] == "^":
                out.append("^")
                i += 1
            if i + 1 < n and pattern[i + 1] == "]":
                out.append("]")
                i += 1
        elif c in "^$":
            pass
        elif c == "." and dot is not None:
            # Keys never hold control characters or quotes: keep the anchor inside one key.
            out.append(dot)
        else:
            out.append(c)
        i += 1
    return "".join(out)


# --- The bytes a pattern's matches can hold ------------------------------------------

_ASCII = frozenset(range(0x80))
_NON_ASCII_BYTES = frozenset(range(0x80, 0x100))  # every byte of a UTF-8 encoded non-ASCII character
# RE2's classes (ASCII only; its \s has no \v), not Python's Unicode-aware ones: exact
# sets keep a negated class's complement exact too.
_CATEGORY_ASCII = {
    _sre.CATEGORY_DIGIT: frozenset(range(0x30, 0x3A)),
    _sre.CATEGORY_SPACE: frozenset(b" \t\n\r\f"),
    _sre.CATEGORY_WORD: frozenset(b"0123456789_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
}
_CATEGORY_NEGATED = {
    _sre.CATEGORY_NOT_DIGIT: _sre.CATEGORY_DIGIT,
    _sre.CATEGORY_NOT_SPACE: _sre.CATEGORY_SPACE,
    _sre.CATEGORY_NOT_WORD: _sre.CATEGORY_WORD,
}


class _Unknown(Exception):
    """A construct whose bytes are not worked out; the caller assumes any byte."""


def _case_closed(codes: set[int]) -> set[int]:
    # Case-insensitive RE2 also folds k and s to non-ASCII letters (Kelvin sign, long s).
    letters = {c for c in codes if c < 0x80 and chr(c).isalpha()}
    if not letters:
        return codes
    return codes | {c ^ 0x20 for c in letters} | _NON_ASCII_BYTES


def _class_codes(items: list[tuple[Any, Any]]) -> tuple[set[int], bool]:
    """The ASCII codes a character class names (non-ASCII ones as all high bytes), negated?"""
    codes: set[int] = set()
    negated = False
    for op, av in items:
        if op is _sre.NEGATE:
            negated = True
        elif op is _sre.LITERAL:
            codes |= {av} if av < 0x80 else _NON_ASCII_BYTES
        elif op is _sre.RANGE:
            lo, hi = av
            codes |= set(range(lo, min(hi, 0x7F) + 1))
            if hi >= 0x80:
                codes |= _NON_ASCII_BYTES
        elif op is _sre.CATEGORY:
            if av in _CATEGORY_ASCII:
                codes |= _CATEGORY_ASCII[av]
            elif av in _CATEGORY_NEGATED:
                codes |= (_ASCII - _CATEGORY_ASCII[_CATEGORY_NEGATED[av]]) | _NON_ASCII_BYTES
            else:
                raise _Unknown(av)
        else:
            raise _Unknown(op)
    return codes, negated


def _bytes_of(parsed: Any, icase: bool) -> set[int]:
    out: set[int] = set()
    for op, av in parsed:
        if op is _sre.LITERAL:
            codes = {av} if av < 0x80 else set(_NON_ASCII_BYTES)
            out |= _case_closed(codes) if icase else codes
        elif op is _sre.NOT_LITERAL or op is _sre.ANY:
            out |= set(range(256))
        elif op is _sre.IN:
            codes, negated = _class_codes(av)
            if negated:
                # Case folding only shrinks a negated class: its complement without folding is a superset.
                out |= (_ASCII - codes) | _NON_ASCII_BYTES
            else:
                out |= _case_closed(codes) if icase else codes
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
            _lo, hi, sub = av
            if hi != 0:
                out |= _bytes_of(sub, icase)
        elif op is _sre.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            ignorecase = _sre.SRE_FLAG_IGNORECASE
            sub_icase = (icase or bool(add_flags & ignorecase)) and not del_flags & ignorecase
            out |= _bytes_of(sub, sub_icase)
        elif op is _sre.BRANCH:
            for alternative in av[1]:
                out |= _bytes_of(alternative, icase)
        elif op is _sre.ATOMIC_GROUP:
            out |= _bytes_of(av, icase)
        elif op is _sre.AT:
            continue  # ^ $ \b \B hold no byte
        else:
            raise _Unknown(op)
    return out


def bytes_in_matches(pattern: str) -> frozenset[int] | None:
    """A superset of the bytes any match of ``pattern`` (RE2, on UTF-8) can contain, or None
    when the pattern uses syntax this reading does not cover (then any byte may be in one).

    The text path of the redactor widens a region around an anchor only up to a byte outside
    this set: no match spans it, so a search that starts after it finds what a search from
    the start of the text finds there. Read with Python's own regex parser (the built-in
    patterns are in the syntax both engines share), and superset wherever they differ."""
    try:
        parsed = _sre_parse.parse(pattern)
        icase = bool(parsed.state.flags & _sre.SRE_FLAG_IGNORECASE)
        return frozenset(_bytes_of(list(parsed), icase))
    except (_Unknown, stdlib_re.error, OverflowError, RecursionError):
        return None
