"""The redaction engine: finds validated PII in strings, JSON and bytes, and rewrites them.

Two levels of matching keep clean data cheap:

1. ``RequestScanner`` runs every detector's *anchor* over the serialized bytes of a whole
   request in one RE2 pass. No anchor hit proves the request clean; otherwise the hit
   offsets say which spans, records and fields to look at.
2. ``Redactor.find`` checks one string with an RE2 ``Set`` of all candidate patterns (one
   DFA pass), then enumerates only the detectors that matched and validates each candidate.

Everything runs on UTF-8 bytes, with RE2's low-level ``Match`` (byte offsets): the
``re2`` module's Python wrapper re-encodes the text and maps offsets back to characters on
every call, which costs more than the match itself on short strings.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import re2

from processors.pii_redaction.detectors import (
    BLOCKED_KEY,
    CONTEXT_FREE_VALIDATORS,
    IBAN_COUNTRIES,
    NATIVE_VALIDATORS,
    Detector,
    builtin_detectors,
    bytes_in_matches,
    key_anchors,
    key_pattern_stays_in_key,
    key_rules_regex,
    native_tables,
    relax_assertions,
    validator_from_callable,
)

try:
    from processors.pii_redaction import _prefilter
except ImportError:  # built without a C compiler: every anchor runs in RE2
    _prefilter = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

_UNANCHORED = re2._Anchor.UNANCHORED
_ANCHOR_BOTH = re2._Anchor.ANCHOR_BOTH

DROP: Any = object()  # sentinel: remove the enclosing attribute / map entry / element


def _raw(pattern: str) -> Any:
    """The compiled ``_re2.RE2`` object behind ``re2.compile`` (byte-offset ``Match``)."""
    return re2.compile(pattern)._regexp


@dataclass(slots=True)
class Hit:
    start: int
    end: int
    detector: Detector


class Tally:
    """Redactions of one span / log record / resource, by type."""

    __slots__ = ("by_type",)

    def __init__(self) -> None:
        self.by_type: dict[str, int] = {}

    def add(self, type_name: str, n: int = 1) -> None:
        self.by_type[type_name] = self.by_type.get(type_name, 0) + n

    @property
    def total(self) -> int:
        return sum(self.by_type.values())

    def __bool__(self) -> bool:
        return bool(self.by_type)


class RequestScanner:
    """Finds where anchors match in a serialized request.

    One RE2 regex (the alternation of all anchors) runs over the request; each call returns
    the leftmost match, so a clean request costs one DFA pass and a call.

    hyperscan was measured as well and was slower on this anchor set (4.6 vs 3.4 us per
    1.5 KB span; the digit-class anchors keep it off its literal fast paths), so it is not used.
    """

    def __init__(self, anchors: Sequence[str]) -> None:
        self.anchors = list(anchors)
        # Serialized protobuf is bytes, not text: anchors match bytes (Latin-1 mode, where
        # [\x80-\xff] means bytes, not code points). Anchors with non-ASCII characters (from
        # custom detectors) run in UTF-8 mode in a second regex, so their classes keep meaning.
        ascii_anchors = [a for a in self.anchors if a.isascii()]
        other = [a for a in self.anchors if not a.isascii()]
        latin1 = re2.Options()
        latin1.encoding = re2.Options.Encoding.LATIN1
        self._regexes = []
        if ascii_anchors:
            pattern = "|".join(f"(?:{a})" for a in ascii_anchors).encode("ascii")
            self._regexes.append(re2.compile(pattern, latin1)._regexp)
        if other:
            self._regexes.append(_raw("|".join(f"(?:{a})" for a in other)))

    def matches(self, buf: bytes) -> list[tuple[int, int]]:
        """``(start, end)`` of the leftmost non-overlapping matches, per regex."""
        out: list[tuple[int, int]] = []
        n = len(buf)
        for rx in self._regexes:
            pos = 0
            while pos <= n:
                s, e = rx.Match(_UNANCHORED, buf, pos, n)[0]
                if s < 0:
                    break
                out.append((s, max(e, s + 1)))
                pos = e if e > s else e + 1
        return out


# The _prefilter.c family that covers each built-in detector's anchors.
PREFILTER_FAMILY = {
    "email": "email",
    "credit_card": "digits",
    "us_ssn": "digits",
    "phone": "digits",
    "ipv4": "digits",
    "iban": "iban",
    "ipv6": "ipv6",
    "openai_api_key": "sk",
    "anthropic_api_key": "sk",
    "aws_access_key_id": "aws_id",
    "aws_secret_access_key": "aws_secret",
    "github_token": "github",
    "gitlab_token": "gitlab",
    "slack_token": "slack",
    "stripe_key": "stripe",
    "google_api_key": "google",
    "jwt": "jwt",
    "private_key": "pem",
    "bearer_token": "bearer",
    "basic_auth": "basic",
    "url_credentials": "url_credentials",
    "url_token_param": "url_token",
    "secret_assignment": "assignment",
}


class _PrefilterPlan:
    """What ``_prefilter.c`` covers of a set of detectors and key rules: its families, the
    detectors whose anchors it finds (``covered``), the anchors it does not (``rest``: custom
    detectors' anchors, key patterns that can match control characters or quotes), and the
    key rules' regex."""

    def __init__(self, detectors: Sequence[Detector], key_patterns: Sequence[str]) -> None:
        assert _prefilter is not None
        self.families = 0
        self.rest: list[str] = []
        self.covered: list[Detector] = []
        for d in detectors:
            family = PREFILTER_FAMILY.get(d.name) if d.builtin else None
            if family is None:
                self.rest.extend(a for a in d.anchors if a not in self.rest)
                continue
            self.covered.append(d)
            self.families |= _prefilter.FAMILIES[family]
            if d.name == "ipv4" and _redacts_public_ipv4_only(d):
                self.families |= _prefilter.FAMILIES["ipv4_public"]
            if d.name == "phone":  # the region-dependent phone anchors (phone_anchors)
                if any(r"\(?0(" in a for a in d.anchors):
                    self.families |= _prefilter.FAMILIES["phone_zero"]
                if any(r"\d(?:[ .]?\d){6}" in a for a in d.anchors):
                    self.families |= _prefilter.FAMILIES["phone_seven"]
        self.key_rule: Any = None
        self.keys_in_c = True
        if key_patterns:
            if all(key_pattern_stays_in_key(p) for p in key_patterns):
                self.families |= _prefilter.FAMILIES["keys"]
                self.key_rule = _latin1(key_rules_regex(key_patterns))
            else:
                self.keys_in_c = False
                self.rest.extend(key_anchors(key_patterns))

    def prefilter(self) -> Any:
        assert _prefilter is not None
        # The IBAN anchors' country alternation, checked in C.
        return _prefilter.Prefilter(self.families, "".join(IBAN_COUNTRIES).encode("ascii"))


# Addresses at the edges of each range that _prefilter.c skips (private_ipv4) for an ipv4
# detector which redacts only public addresses.
_PRIVATE_IPV4_PROBES = (
    b"0.0.0.1",
    b"0.255.255.255",
    b"10.0.0.1",
    b"10.255.255.254",
    b"127.0.0.1",
    b"169.254.0.1",
    b"169.254.255.254",
    b"172.16.0.1",
    b"172.31.255.254",
    b"192.168.0.1",
    b"192.168.255.254",
)


def _redacts_public_ipv4_only(detector: Detector) -> bool:
    """Whether the ipv4 detector's validator turns down every private range the C pass
    can skip (it does unless ``redact_private_ips`` is set). Asked of the validator itself,
    so the C pass skips nothing the detector would redact."""
    validate = detector.validate
    if validate is None:
        return False
    return not any(validate(b" " + a + b" ", 1, 1 + len(a)) for a in _PRIVATE_IPV4_PROBES)


class PrefilteredScanner:
    """``RequestScanner.matches`` with the built-in anchors found by ``_prefilter.c``.

    The C pass returns windows that overlap every match of the built-in detectors' anchors,
    and they are flagged as they are: a window may hold no match, never miss one. They used
    to be verified by RE2 (the alternation of every anchor, inside each window), but on the
    benchmark workload only 0.1 of ~18 windows per 100-span request holds no match once the
    IBAN family checks its country code, and locate() then maps them to 9.9 fields against
    9.8 for the verified matches; the ~40 RE2 calls on a DFA out of cache cost ~0.5 us per
    span (10% PII: 6.08 -> 5.56 us per span, min of 7 interleaved runs). Key rules are
    decided per key (found by its framing) and remembered in the C pass. Anchors without a
    C family (custom detectors, key patterns that can match control characters or quotes)
    keep the whole-request RE2 scan, in a regex of their own.

    Measured on the benchmark workload (``python -m bench.bench_pii_scan``): 2.9-3.6 us per
    1.5 kB span at 10% PII once warm with the verification, against 4.0-4.5 for the single
    RE2 regex of every anchor, and about half of RE2's cost on content it has not seen (its
    DFA is lazy).
    """

    def __init__(self, detectors: Sequence[Detector], key_patterns: Sequence[str]) -> None:
        plan = _PrefilterPlan(detectors, key_patterns)
        self._key_rule = plan.key_rule
        self._prefilter = plan.prefilter()
        self._rest = RequestScanner(plan.rest) if plan.rest else None

    def matches(self, buf: bytes, found: ScanFound | None = None) -> list[tuple[int, int]]:
        """``found``: what the C pass found in ``buf`` already (``BackgroundScans``)."""
        windows, out, unknown_keys = found if found is not None else self._prefilter.scan(buf)
        out.extend(windows)
        for start, end, key_start, key_end in unknown_keys:
            if _decide_key(self._prefilter, self._key_rule, buf[key_start:key_end]):
                out.append((start, end))
        if self._rest is not None:
            out.extend(self._rest.matches(buf))
        out.sort()
        return out

    def in_background(self) -> BackgroundScans:
        return BackgroundScans(self._prefilter)


# What the C pass returns: windows, key hits, unknown keys (``_prefilter.Prefilter.scan``).
ScanFound = tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, int, int, int]]]


class BackgroundScans:
    """The C pass of ``PrefilteredScanner`` on the prefilter's own worker thread, awaited on
    the event loop: the loop's thread decodes the request meanwhile, and serves others.

    The worker never takes the GIL (``_prefilter.c``, "the worker thread"); a pipe tells
    the loop that results are there, and its reader hands them to the waiting futures.
    Bound to the running loop on first use, and again when the loop or the pipe changes (a
    new loop in tests, a forked child): the previous loop's waiting requests then get None
    (their processor scans them in line), through that loop if it runs in another thread.
    """

    def __init__(self, prefilter: Any) -> None:
        self._prefilter = prefilter
        self._waiting: dict[int, asyncio.Future[ScanFound | None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1

    def start(self, buf: bytes) -> asyncio.Future[ScanFound | None]:
        """A future of what ``Prefilter.scan(buf)`` returns (None if it ran out of memory).
        NotImplementedError from a loop that cannot watch a pipe (``add_reader``)."""
        loop = asyncio.get_running_loop()
        fd = self._prefilter.ready_fd()
        if loop is not self._loop or fd != self._fd:
            self.close()
            loop.add_reader(fd, self._collect)
            self._loop, self._fd = loop, fd
        future: asyncio.Future[ScanFound | None] = loop.create_future()
        self._waiting[self._prefilter.submit(buf)] = future
        return future

    def _collect(self) -> None:
        # Called by a loop's reader: after a hand-over, the previous loop may still call it
        # once, from its own thread, and collect the new loop's results.
        here = asyncio.get_running_loop()
        for job, found in self._prefilter.completed():
            future = self._waiting.pop(job, None)
            if future is not None:
                _settle(here, future, found)

    def close(self) -> None:
        """Stop watching the pipe. Requests still waiting get None, as if the scan had
        failed: their processor scans them itself (at shutdown, the HTTP server still
        answers requests in flight)."""
        loop, self._loop = self._loop, None
        waiting, self._waiting = self._waiting, {}
        if loop is None or loop.is_closed():
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if loop is here:
            loop.remove_reader(self._fd)
        else:  # only the loop's own thread may change it
            loop.call_soon_threadsafe(loop.remove_reader, self._fd)
        for future in waiting.values():
            _settle(here, future, None)


def _settle(here: asyncio.AbstractEventLoop | None, future: asyncio.Future[Any], result: Any) -> None:
    """``future.set_result(result)`` unless done, from ``here`` (the running loop or None),
    through the future's own loop when that is another one."""
    owner = future.get_loop()
    if owner is here:
        if not future.done():
            future.set_result(result)
    elif not owner.is_closed():
        owner.call_soon_threadsafe(_settle, owner, future, result)


def _decide_key(prefilter: Any, key_rule: Any, key: bytes) -> bool:
    """Whether a key rule matches ``key``, remembered by the C pass for its next scans."""
    hit: bool = key_rule.Match(_ANCHOR_BOTH, key, 0, len(key))[0][0] >= 0
    prefilter.learn(key, hit)
    return hit


def request_scanner(redactor: Redactor) -> RequestScanner | PrefilteredScanner:
    """The fastest request scanner for a redactor's detectors and key rules."""
    if _prefilter is None:
        return RequestScanner(redactor.anchors())
    return PrefilteredScanner(redactor.detectors, redactor.key_patterns)


def _latin1(pattern: str) -> Any:
    """``pattern`` compiled to match bytes (Latin-1 mode), as the request anchors do."""
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1
    return re2.compile(pattern.encode("ascii"), options)._regexp


# One detector to run over buf[start:end]: (index into Redactor.detectors, start, end, last).
# No match of it starts at or after ``last`` (where the prefilter's last window for it ends):
# once a search reaches it, the region is done. Or a hit of a detector the C pass finds by
# itself (``_matchers.h``): (index, start, end).
Work = tuple[int, int, int, int] | tuple[int, int, int]
_first = operator.itemgetter(0)
_blake2b = hashlib.blake2b

# A needlessly escaped ASCII character ("\u0040" for "@") in JSON text: it can hide a value
# from the raw-text check, so such JSON is always parsed.
_ESCAPED_ASCII_PATTERN = r"\\u00[2-7][0-9a-fA-F]"
_ESCAPED_ASCII = _raw(_ESCAPED_ASCII_PATTERN)


class _TextFinder:
    """Where the detectors can match in one string, from the C prefilter's ``scan_text``.

    The redactor used to run an RE2 ``Set`` of every detector over each string the request
    scan flagged, then each matched detector's regex over the whole string: a 1-2 kB prompt
    cost ~30 us, most of it in the Set (whose large DFA is out of cache between calls).
    Here the C pass finds the windows that may hold each built-in detector's anchor, and
    each detector runs only on the region around its windows, widened to bytes its
    matches cannot contain (``bytes_in_matches``), so it finds exactly the matches a
    search of the whole string finds there. Custom detectors keep a Set of their own.
    """

    @classmethod
    def for_detectors(
        cls, detectors: Sequence[Detector], key_patterns: Sequence[str], native: bool = True
    ) -> _TextFinder | None:
        if _prefilter is None:
            return None
        plan = _PrefilterPlan(detectors, key_patterns)
        # Key patterns the C pass cannot frame keep the Set path, which holds their JSON forms.
        return cls(detectors, plan, native) if plan.keys_in_c else None

    def __init__(self, detectors: Sequence[Detector], plan: _PrefilterPlan, native: bool = True) -> None:
        assert _prefilter is not None
        self._prefilter = plan.prefilter()
        self._key_rule = plan.key_rule
        covered = {d.name for d in plan.covered}
        entries: list[tuple[int, int, bytes | None, bool]] = []
        self._rest: list[int] = []
        self._prefilter.native_checks(*native_tables())
        for i, d in enumerate(detectors):
            if not (d.builtin and d.name in covered):
                self._rest.append(i)
                continue
            allowed = bytes_in_matches(d.pattern)
            breakers = None if allowed is None else bytes(c not in allowed for c in range(256))
            # Found by the C pass itself (_matchers.h) when it implements this very validator.
            in_c = (
                native
                and d.name in _prefilter.NATIVE_DETECTORS
                and d.name in NATIVE_VALIDATORS
                and d.validate is NATIVE_VALIDATORS[d.name]
            )
            entries.append((_prefilter.DETECTOR_BITS[d.name], i, breakers, in_c))
        # In detector order, as the Set path reports them: hits of equal priority and
        # length are then resolved alike on both paths.
        self._prefilter.text_detectors(entries)
        self._rest_set: Any = None
        if self._rest:
            rest_set = re2.Set.SearchSet()
            for i in self._rest:
                rest_set.Add(detectors[i].pattern)
            rest_set.Compile()
            self._rest_set = rest_set._set

    def candidates(self, buf: bytes) -> tuple[list[Work], bool]:
        """The work for ``buf``, and whether it holds a JSON key a key rule matches."""
        work, key_hits, unknown_keys = self._prefilter.scan_text(buf)
        marker = bool(key_hits)
        for _start, _end, key_start, key_end in unknown_keys:
            if _decide_key(self._prefilter, self._key_rule, buf[key_start:key_end]):
                marker = True
        if self._rest_set is not None:
            ids = self._rest_set.Match(buf)
            if ids:
                n = len(buf)
                work.extend((self._rest[j], 0, n, n) for j in ids)
                work.sort(key=_first)
        return work, marker


# Attribute names like "gen_ai.usage.input_tokens" or "http.request.header.x-id": too plain to
# hold a value, so neither scanned nor withheld from log lines.
PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,127}").fullmatch


@dataclass(frozen=True, slots=True)
class KeyDecision:
    allowed: bool = False
    action: str | None = None  # whole-value action for blocked keys / key rules
    # PLAIN_KEY(key), decided with the rest: the regex cost ~1% of the receiver's time
    # when asked for every flagged attribute.
    plain: bool = True


_PASS = KeyDecision()
_PASS_NOT_PLAIN = KeyDecision(plain=False)
_ALLOW = KeyDecision(allowed=True)


class Redactor:
    def __init__(
        self,
        detectors: Sequence[Detector],
        *,
        default_action: str = "mask",
        actions: dict[str, str] | None = None,
        allowed_keys: Iterable[str] = (),
        allowed_key_patterns: Iterable[str] = (),
        key_rules: Sequence[tuple[str, str]] = (),
        hash_key: bytes | None = None,
        parse_json: bool = True,
        max_depth: int = 64,
        ner: Callable[[str], list[tuple[int, int, str]]] | None = None,
    ) -> None:
        self.detectors = list(detectors)
        self.default_action = default_action
        self.actions = dict(actions or {})
        self.allowed_keys = frozenset(allowed_keys)
        self._allowed_rx = [_raw(p) for p in allowed_key_patterns]
        self._key_rules = [(_raw(p), action) for p, action in key_rules]
        self.key_patterns = [p for p, _ in key_rules]
        self.hash_key = hash_key
        self.parse_json = parse_json
        self.max_depth = max_depth
        self.ner = ner
        self._key_cache: dict[str, KeyDecision] = {}
        self._masks: dict[str, bytes] = {}
        self._validation_cache: dict[tuple[int, bytes], list[tuple[int, int]]] = {}

        self._set = re2.Set.SearchSet()
        # What _find_in reads per detector, looked up once: (its locator's bound Match,
        # extractor, value group, detector, validator, whether the validator's results may be
        # cached). The locator has no capturing groups so RE2 finds matches with its DFA; the
        # extractor (with groups) runs only on a match.
        self._searches: list[tuple[Any, Any, int, Detector, Any, bool]] = []
        for d in self.detectors:
            self._set.Add(d.pattern)
            compiled = re2.compile(d.pattern)
            value_group = compiled.groupindex.get("value", 0)
            locator = _raw(_without_captures(d.pattern)) if compiled.groups else compiled._regexp
            cacheable = d.validate in CONTEXT_FREE_VALIDATORS
            self._searches.append((locator.Match, compiled._regexp, value_group, d, d.validate, cacheable))
        # Key patterns also make a string worth parsing as JSON (a "password" key inside).
        self._key_marker = len(self.detectors)
        if self.key_patterns:
            for a in key_anchors(self.key_patterns)[2:]:  # JSON-key forms; protobuf keys are checked directly
                self._set.Add(a)
        self._set.Add(_ESCAPED_ASCII_PATTERN)
        self._set.Compile()
        self._raw_set = self._set._set
        # By identity: a frozen dataclass hashes every field on each lookup (~1 us).
        self._action_cache: dict[int, str] = {}
        self._text_finder = _TextFinder.for_detectors(self.detectors, self.key_patterns)
        self._type_names = sorted({d.type for d in self.detectors})
        self._masker = self._new_masker()

    def _new_masker(self) -> Any:
        """The C mask step (``_masker.h``), where it gives what ``_finish_text`` would: every
        detector masks, and no NER span joins the hits."""
        if _prefilter is None or self.ner is not None:
            return None
        if any(self.action_for(d) != "mask" for d in self.detectors):
            return None
        type_ids = {t: k for k, t in enumerate(self._type_names)}
        return _prefilter.Masker(
            [d.priority for d in self.detectors],
            [self.token(d.type, "mask", b"") for d in self.detectors],
            [type_ids[d.type] for d in self.detectors],
        )

    # --- anchors for the request prefilter ---

    def anchors(self) -> list[str]:
        out: list[str] = []
        for d in self.detectors:
            out.extend(a for a in d.anchors if a not in out)
        if self.key_patterns:
            out.extend(key_anchors(self.key_patterns))
        return out

    # --- keys ---

    def key_decision(self, key: str) -> KeyDecision:
        d = self._key_cache.get(key)
        if d is not None:
            return d
        kb = key.encode("utf-8", "surrogatepass")
        if key in self.allowed_keys or any(
            rx.Match(_ANCHOR_BOTH, kb, 0, len(kb))[0][0] >= 0 for rx in self._allowed_rx
        ):
            d = _ALLOW
        else:
            plain = PLAIN_KEY(key) is not None
            d = _PASS if plain else _PASS_NOT_PLAIN
            for rx, action in self._key_rules:
                if rx.Match(_ANCHOR_BOTH, kb, 0, len(kb))[0][0] >= 0:
                    d = KeyDecision(action=action, plain=plain)
                    break
        if len(self._key_cache) < 65536:  # keys are low-cardinality; the bound guards abuse
            self._key_cache[key] = d
        return d

    # --- actions ---

    def action_for(self, det: Detector) -> str:
        a = self._action_cache.get(id(det))
        if a is None:
            a = self.actions.get(det.name) or self.actions.get(det.type) or self.default_action
            self._action_cache[id(det)] = a
        return a

    def token(self, type_name: str, action: str, value: bytes) -> bytes:
        if action == "hash" and self.hash_key is not None:
            digest = hmac.new(self.hash_key, value, hashlib.sha256).hexdigest()[:8]
            return f"[{type_name}:{digest}]".encode()
        return f"[REDACTED:{type_name}]".encode()

    def whole_value_token(self, action: str, value: bytes) -> str:
        return self.token(BLOCKED_KEY, action, value).decode()

    # --- detection ---

    def find(self, buf: bytes) -> list[Hit]:
        work, _ = self._candidates(buf)
        return self._find_in(buf, work) if work else []

    def _candidates(self, buf: bytes) -> tuple[list[Work], bool]:
        """Which detectors to run on ``buf`` and where; and whether a key rule's JSON key or
        an escaped ASCII character is in it (then JSON text must be parsed)."""
        finder = self._text_finder
        if finder is not None:
            work, marker = finder.candidates(buf)
            if not marker and buf.find(b"\\u00") >= 0:
                marker = _ESCAPED_ASCII.Match(_UNANCHORED, buf, 0, len(buf))[0][0] >= 0
            return work, marker
        ids = self._raw_set.Match(buf)
        if not ids:
            return [], False
        n, key_marker = len(buf), self._key_marker
        # Sorted: hits of equal priority and length go to the first detector on both paths.
        return [(i, 0, n, n) for i in sorted(ids) if i < key_marker], any(i >= key_marker for i in ids)

    def _find_in(self, buf: bytes, work: list[Work]) -> list[Hit]:
        detectors = self.detectors
        hits = [Hit(start, end, detectors[i]) for i, start, end in self._spans_in(buf, work)]
        if len(hits) > 1:
            hits = _resolve(hits)
        return hits

    def _spans_in(self, buf: bytes, work: list[Work]) -> list[tuple[int, int, int]]:
        """The matches of ``work``'s detectors, validated, as (detector index, start, end),
        overlaps not yet resolved."""
        spans: list[tuple[int, int, int]] = []
        cache = self._validation_cache
        for item in work:
            if len(item) == 3:  # a hit the C pass found and validated (_matchers.h)
                spans.append(item)
                continue
            i, start, end, last = item
            match, extractor, value_group, _det, validate, cacheable = self._searches[i]
            pos = start
            # An empty match is never a hit, so the search stops once it reaches the end.
            while pos < end:
                s, e = match(_UNANCHORED, buf, pos, end)[0]
                if s < 0:
                    break
                vs, ve = s, e
                if value_group:
                    groups = extractor.Match(_ANCHOR_BOTH, buf, s, e)
                    if groups[0][0] >= 0 and groups[value_group][0] >= 0:
                        vs, ve = groups[value_group]
                if ve > vs:
                    if validate is None:
                        spans.append((i, vs, ve))
                    elif cacheable:
                        # Conversation histories repeat the same values turn after turn. The
                        # key is a digest, so no candidate is kept in memory as text.
                        key = (i, _blake2b(buf[vs:ve], digest_size=16).digest())
                        rel = cache.get(key)
                        if rel is None:
                            rel = [(a - vs, z - vs) for a, z in validate(buf, vs, ve)]
                            if len(cache) >= 16384:
                                cache.clear()
                            cache[key] = rel
                        for a, z in rel:
                            spans.append((i, vs + a, vs + z))
                    else:
                        for a, z in validate(buf, vs, ve):
                            spans.append((i, a, z))
                pos = e if e > s else e + 1
                if pos >= last:
                    break
        return spans

    # --- rewriting ---

    def redact_bytes(self, buf: bytes, tally: Tally, hits: list[Hit] | None = None) -> bytes | Any | None:
        """Redacted copy of ``buf``; None when clean; DROP when a hit's action is drop."""
        if hits is None:
            hits = self.find(buf)
        if not hits:
            return None
        out: list[bytes] = []
        last = 0
        action_for, by_type, masks = self.action_for, tally.by_type, self._masks
        for h in hits:
            det = h.detector
            action = action_for(det)
            by_type[det.type] = by_type.get(det.type, 0) + 1
            if action == "drop":
                return DROP
            out.append(buf[last : h.start])
            if action == "hash" and self.hash_key is not None:
                value = buf[h.start : h.end]
                if det.normalize is not None:
                    value = det.normalize(value.decode("utf-8", "replace")).encode()
                out.append(self.token(det.type, action, value))
            else:
                # The same few bytes every time: built once per type (~0.4 us per hit).
                mask = masks.get(det.type)
                if mask is None:
                    mask = masks[det.type] = self.token(det.type, "mask", b"")
                out.append(mask)
            last = h.end
        out.append(buf[last:])
        return b"".join(out)

    def redact_text(self, text: str, tally: Tally, depth: int = 0) -> str | Any | None:
        """Redacted ``text`` (JSON inside kept valid); None when clean; DROP to drop it."""
        buf = text.encode("utf-8", "surrogatepass")
        work, marker = self._candidates(buf)
        masker = self._masker
        if masker is not None and not marker:
            # Every action is mask and there is no NER: resolving the hits, the JSON-string
            # check, masking and counting are one C call.
            if not work:
                return None
            spans = self._spans_in(buf, work)
            if not spans:
                return None
            json_shaped = self._json_shaped(text, depth)
            masked = masker.mask(buf, spans, json_shaped)
            if masked is None:  # a hit outside the JSON's string literals
                result = self._redact_json_text(buf, tally, depth)
                if result is not _NOT_JSON:
                    return result
                masked = masker.mask(buf, spans, False)
            redacted, counts = masked
            by_type, type_names = tally.by_type, self._type_names
            for t, n in counts:
                name = type_names[t]
                by_type[name] = by_type.get(name, 0) + n
            decoded: str = redacted.decode("utf-8", "surrogatepass")
            return decoded
        ner_spans = self.ner(text) if self.ner is not None else None
        if not work and not marker and not ner_spans:
            return None
        hits: list[Hit] | None = None
        if self._json_shaped(text, depth):
            if not ner_spans and not marker:
                # Cheap path: no validated value in the raw text means none in the parsed
                # strings either (no key rule and no escaped ASCII is involved).
                hits = self._find_in(buf, work)
                if not hits:
                    return None
                if self._inside_json_strings(buf, hits):
                    # Replacing text inside string literals with quote- and backslash-free
                    # tokens keeps the document valid, its structure and its formatting.
                    return self._finish_text(buf, tally, hits)
            result = self._redact_json_text(buf, tally, depth)
            if result is not _NOT_JSON:
                return result
        if hits is None:
            hits = self._find_in(buf, work) if work else []
        if ner_spans:
            hits = _resolve(hits + _ner_hits(buf, text, ner_spans))
        return self._finish_text(buf, tally, hits)

    def _json_shaped(self, text: str, depth: int) -> bool:
        """Whether ``text`` is to be read as a JSON document."""
        return (
            self.parse_json
            and depth < self.max_depth
            and text.lstrip()[:1] in ("{", "[")
            and text.rstrip()[-1:] in ("}", "]")
        )

    def _redact_json_text(self, buf: bytes, tally: Tally, depth: int) -> str | Any | None:
        """``buf`` parsed as JSON and redacted value by value; ``_NOT_JSON`` if it does not
        parse."""
        try:
            doc = orjson.loads(buf)
        except orjson.JSONDecodeError:
            return _NOT_JSON
        new_doc = self.redact_json(doc, tally, depth + 1)
        if new_doc is DROP:
            return DROP
        if new_doc is _UNCHANGED:
            return None
        dumped: str = orjson.dumps(new_doc).decode()
        return dumped

    def _finish_text(self, buf: bytes, tally: Tally, hits: list[Hit]) -> str | Any | None:
        result = self.redact_bytes(buf, tally, hits)
        if result is None or result is DROP:
            return result
        decoded: str = result.decode("utf-8", "surrogatepass")
        return decoded

    def _inside_json_strings(self, buf: bytes, hits: list[Hit]) -> bool:
        """True when every hit lies inside one JSON string literal, away from escapes, and
        none asks for ``drop`` (which removes a JSON entry, so needs the parsed document).
        Quote parity is exact only without escaped quotes, so those documents are parsed."""
        action_for = self.action_for
        for h in hits:
            if action_for(h.detector) == "drop":
                return False
        return _spans_inside_json_strings(buf, [(h.start, h.end) for h in hits])

    def redact_json(self, node: Any, tally: Tally, depth: int) -> Any:
        """Redacted copy of a parsed JSON value, ``_UNCHANGED`` when clean, DROP to drop it."""
        if depth > self.max_depth:
            tally.add(BLOCKED_KEY)
            return self.whole_value_token("mask", b"")
        if isinstance(node, str):
            r = self.redact_text(node, tally, depth)
            return _UNCHANGED if r is None else r
        if isinstance(node, dict):
            changed = False
            out: dict[str, Any] = {}
            for k, v in node.items():
                decision = self.key_decision(k)
                if decision.allowed:
                    out[k] = v
                    continue
                if decision.action is not None:
                    tally.add(BLOCKED_KEY)
                    changed = True
                    if decision.action == "drop":
                        continue
                    out[k] = self.whole_value_token(decision.action, orjson.dumps(v))
                    continue
                nk = self.redact_text(k, tally, self.max_depth) if not k.isidentifier() else None
                nv = self.redact_json(v, tally, depth + 1)
                if nk is DROP or nv is DROP:
                    changed = True
                    continue
                if nk is not None:
                    changed = True
                    k = nk
                if nv is not _UNCHANGED:
                    changed = True
                    out[k] = nv
                else:
                    out[k] = v
            return out if changed else _UNCHANGED
        if isinstance(node, list):
            changed = False
            items: list[Any] = []
            for v in node:
                nv = self.redact_json(v, tally, depth + 1)
                if nv is DROP:
                    changed = True
                    continue
                if nv is _UNCHANGED:
                    items.append(v)
                else:
                    changed = True
                    items.append(nv)
            return items if changed else _UNCHANGED
        if isinstance(node, int) and not isinstance(node, bool) and abs(node) >= 1_000_000:
            r = self.redact_text(str(node), tally, self.max_depth)
            return _UNCHANGED if r is None else r
        return _UNCHANGED


def json_strings_hold(buf: bytes, spans: list[tuple[int, int]]) -> bool:
    """The reference of the C pass's ``inside_json_strings``: every span (sorted by start)
    lies inside one string literal of the JSON text ``buf``, away from escapes."""
    # find(), not `in`: bytes.__contains__ first tries its argument as an integer and
    # formats a TypeError, which cost more than the searches (~1k instructions per span).
    if buf.find(b'\\"') >= 0:
        return False
    quotes = counted = 0  # spans are sorted by start: the quotes before each are counted once
    for s, e in spans:
        quotes += buf.count(b'"', counted, s)
        counted = s
        if (
            buf.find(b'"', s, e) >= 0
            or buf.find(b"\\", s, e) >= 0
            or (s > 0 and buf[s - 1] == 0x5C)
            or quotes % 2 == 0
        ):
            return False
    return True


_spans_inside_json_strings = json_strings_hold if _prefilter is None else _prefilter.inside_json_strings


def _without_captures(pattern: str) -> str:
    """``pattern`` with its capturing groups made non-capturing (same language)."""
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                out.append("[^")
                i += 2
                if pattern[i : i + 1] == "]":
                    out.append("]")
                    i += 1
                continue
            if pattern[i + 1 : i + 2] == "]":
                out.append("[]")
                i += 2
                continue
        elif c == "(":
            if pattern.startswith("(?P<", i):
                close = pattern.index(">", i)
                out.append("(?:")
                i = close + 1
                continue
            if pattern[i + 1 : i + 2] != "?":
                out.append("(?:")
                i += 1
                continue
        out.append(c)
        i += 1
    return "".join(out)


_NOT_JSON: Any = object()
_UNCHANGED: Any = object()


def _resolve(hits: list[Hit]) -> list[Hit]:
    """Non-overlapping hits, preferring higher priority, then longer; sorted by start.

    Hits are grouped into clusters of transitively overlapping spans first, so the greedy
    choice only compares hits within a cluster (a megabyte of back-to-back card numbers is
    tens of thousands of hits, and comparing all pairs would be quadratic)."""
    by_start = sorted(hits, key=_START_END)
    # Most strings' hits do not overlap (one e-mail, one phone): they are the answer.
    previous_end = -1
    for h in by_start:
        if h.start < previous_end:
            break
        previous_end = h.end
    else:
        return by_start
    kept: list[Hit] = []
    cluster: list[Hit] = []
    cluster_end = -1
    for h in by_start:
        if cluster and h.start >= cluster_end:
            kept.extend(_choose(cluster))
            cluster = []
        cluster.append(h)
        cluster_end = max(cluster_end, h.end) if len(cluster) > 1 else h.end
    if cluster:
        kept.extend(_choose(cluster))
    kept.sort(key=lambda h: h.start)
    return kept


_START_END = operator.attrgetter("start", "end")


def _choose(cluster: list[Hit]) -> list[Hit]:
    if len(cluster) == 1:
        return cluster
    ordered = sorted(cluster, key=lambda h: (-h.detector.priority, -(h.end - h.start), h.start))
    chosen: list[Hit] = []
    for h in ordered:
        if all(h.end <= k.start or h.start >= k.end for k in chosen):
            chosen.append(h)
    return chosen


def _ner_hits(buf: bytes, text: str, spans: list[tuple[int, int, str]]) -> list[Hit]:
    """NER spans come in characters; convert to byte offsets of ``buf``."""
    out: list[Hit] = []
    for start, end, entity in spans:
        bs = len(text[:start].encode("utf-8", "surrogatepass"))
        be = bs + len(text[start:end].encode("utf-8", "surrogatepass"))
        out.append(Hit(bs, be, _ner_detector(entity)))
    return out


_NER_DETECTORS: dict[str, Detector] = {}


def _ner_detector(entity: str) -> Detector:
    d = _NER_DETECTORS.get(entity)
    if d is None:
        d = Detector(f"ner_{entity.lower()}", entity, "", (), None, None, 1, "Presidio NER")
        _NER_DETECTORS[entity] = d
    return d


def build_detectors(
    *,
    phone_regions: Sequence[str],
    enabled: Sequence[str] | None,
    disabled: Sequence[str],
    custom: Sequence[Any],
    resolve_validator: Callable[[str], Callable[[str], bool]],
    include_private_ips: bool = False,
    include_documentation: bool = True,
) -> list[Detector]:
    chosen = []
    for d in builtin_detectors(phone_regions, include_private_ips, include_documentation):
        if enabled is not None and d.name not in enabled and d.type not in enabled:
            continue
        if d.name in disabled or d.type in disabled:
            continue
        chosen.append(d)
    for c in custom:
        validate = validator_from_callable(resolve_validator(c.validator)) if c.validator else None
        anchor = c.anchor or relax_assertions(c.pattern)
        chosen.append(Detector(c.name, c.type, c.pattern, (anchor,), validate, None, 4, "custom"))
    return chosen
