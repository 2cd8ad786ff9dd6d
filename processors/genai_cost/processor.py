"""The ``genai_cost`` processor: an exact USD cost on every GenAI model-call span.

Which spans are priced (the double-counting rule, see README.md): only spans that carry
their *own* usage under ``gen_ai.usage.*`` (or a legacy name of it) and a model name.
``gen_ai.aggregated_usage.*`` (PydanticAI's agent-run roll-up) is never priced. Usage on
an ``invoke_agent`` / ``create_agent`` / ``execute_tool`` span is priced only when the span
kind is CLIENT (a remote agent service billed per call, with no local model spans under
it); on INTERNAL agent spans it is a roll-up of child model spans, and pricing it would
count those calls twice. The rule looks at one span only, so it holds when a batch
carries part of a trace.
"""

from __future__ import annotations

import os
import struct
from collections import Counter as Tally
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, NamedTuple, TypeAlias

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client import CollectorRegistry, Counter

from otel_receiver import spanscan
from otel_receiver.attributes import Attributes
from otel_receiver.component import (
    Batch,
    ComponentSettings,
    Processor,
    RequestContext,
    Signal,
)
from otel_receiver.encoded_attributes import double_prefix, string_attribute, true_attribute
from otel_receiver.spanscan import Edit, to_python
from otel_receiver.telemetry import PerRegistry
from processors.genai_cost import fastpath
from processors.genai_cost.config import GenAICostConfig
from processors.genai_cost.pricing import (
    EXACT,
    GENAI_PRICES_LABEL,
    NO_MODEL_LABEL,
    STANDARD_SERVICE_TIERS,
    NegativeRemainderError,
    Override,
    PriceBook,
    TokenUsage,
    load_snapshot,
    override_prices,
    price_usage,
)
from semconv import attributes as a
from semconv import normalize

# Slots of the values one scan collects.
_OP, _PROVIDER, _REQ_MODEL, _RESP_MODEL = 0, 1, 2, 3
_IN, _OUT, _CACHE_READ, _CACHE_WRITE, _REASONING = 4, 5, 6, 7, 8
_AUDIO_IN, _AUDIO_OUT, _CACHE_AUDIO_READ = 9, 10, 11
_REPORTED, _PRICING, _OUR_COST = 12, 13, 14
# Attributes we write: found in the same scan so that writing never rescans the list.
_COST_INPUT, _COST_OUTPUT, _COST_CACHE_READ, _COST_CACHE_WRITE = 15, 16, 17, 18
_MISMATCH, _UNPRICED_SLOT, _ERROR = 19, 20, 21
_TIER, _REQUEST_TIER = 22, 23
_SLOTS = 24

_CURRENT: Final[Mapping[str, int]] = {
    a.GEN_AI_OPERATION_NAME: _OP,
    a.GEN_AI_PROVIDER_NAME: _PROVIDER,
    a.GEN_AI_REQUEST_MODEL: _REQ_MODEL,
    a.GEN_AI_RESPONSE_MODEL: _RESP_MODEL,
    a.GEN_AI_USAGE_INPUT_TOKENS: _IN,
    a.GEN_AI_USAGE_OUTPUT_TOKENS: _OUT,
    a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: _CACHE_READ,
    a.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: _CACHE_WRITE,
    a.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: _REASONING,
    a.GEN_AI_USAGE_INPUT_AUDIO_TOKENS: _AUDIO_IN,
    a.GEN_AI_USAGE_OUTPUT_AUDIO_TOKENS: _AUDIO_OUT,
    a.GEN_AI_USAGE_CACHE_AUDIO_READ_TOKENS: _CACHE_AUDIO_READ,
    a.GEN_AI_COST_REPORTED: _REPORTED,
    a.GEN_AI_COST_PRICING: _PRICING,
    a.GEN_AI_USAGE_COST: _OUR_COST,
    a.GEN_AI_USAGE_COST_INPUT: _COST_INPUT,
    a.GEN_AI_USAGE_COST_OUTPUT: _COST_OUTPUT,
    a.GEN_AI_USAGE_COST_CACHE_READ: _COST_CACHE_READ,
    a.GEN_AI_USAGE_COST_CACHE_WRITE: _COST_CACHE_WRITE,
    a.GEN_AI_COST_MISMATCH: _MISMATCH,
    a.GEN_AI_COST_UNPRICED: _UNPRICED_SLOT,
    a.GEN_AI_COST_ERROR: _ERROR,
    a.OPENAI_RESPONSE_SERVICE_TIER: _TIER,
    a.OPENAI_REQUEST_SERVICE_TIER: _REQUEST_TIER,
}
# Legacy and vendor names of the same values (the normalisation table), so that pricing
# works whether genai_normalize ran before us, ran with keep_original, or not at all.
_LEGACY: Final[Mapping[str, int]] = {
    r.old: _CURRENT[r.new] for r in normalize.RULES if r.new in _CURRENT and r.old not in _CURRENT
}
_TOKEN_SLOTS: Final = (
    _IN,
    _OUT,
    _CACHE_READ,
    _CACHE_WRITE,
    _REASONING,
    _AUDIO_IN,
    _AUDIO_OUT,
    _CACHE_AUDIO_READ,
)
# What the C scan reads: the current names in slot order, then the legacy ones.
_SCAN_KEYS: Final = (*sorted(_CURRENT, key=_CURRENT.__getitem__), *_LEGACY)
_NO_LEGACY: Final = (None,) * len(_LEGACY)
_INVALID: Final = -1
_MAX_MODEL_LABELS: Final = 500
_OTHER_MODEL: Final = "(other)"
_INTERNAL_ERROR: Final = "internal_error"

UNPRICED_METRIC: Final = "otel_receiver_genai_unpriced_spans"
COST_ERROR_METRIC: Final = "otel_receiver_genai_cost_errors"


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.unpriced = Counter(
            UNPRICED_METRIC,
            "GenAI spans whose model has no price (no override, not in genai-prices), by model",
            ["model"],
            registry=registry,
        )
        self.errors = Counter(
            COST_ERROR_METRIC,
            "GenAI spans not priced because of invalid token counts (or an internal error), by reason",
            ["reason"],
            registry=registry,
        )


# One set of metric objects per registry, shared by every genai_cost instance.
_METRICS: PerRegistry[_Metrics] = PerRegistry()


# Attribute values below are as ``spanscan.to_python`` gives them (the C scan's values):
# str, bool, int, float, bytes, list, dict, () for an empty AnyValue; None when absent.


def _string(v: Any) -> str | None:
    # Any other kind of value, or "", is "no model" too.
    return v if type(v) is str and v else None


def _legacy_value(key: str | None, v: Any) -> str | None:
    """A string from an old or vendor key, with the table's value mapping applied."""
    s = _string(v)
    if s is None or key is None:
        return None
    rule = normalize.RULE_BY_KEY.get(key)
    if rule is not None and rule.values is not None:
        if rule.values is normalize.PROVIDER_VALUES:
            return normalize.current_provider(s)
        mapped = rule.values.get(s.lower())
        if mapped is not None:
            return mapped
        if not rule.rename:
            return None
    return s


def _reports_usage(current: Sequence[Any], legacy: Sequence[Any] | None) -> bool:
    """Input or output tokens under a current name or a legacy one (found by slot)."""
    if current[_IN] is not None or current[_OUT] is not None:
        return True
    return legacy is not None and (legacy[_IN] is not None or legacy[_OUT] is not None)


class _Legacy(NamedTuple):
    """Values of legacy and vendor names by slot, and which name each came from."""

    values: list[Any]
    keys: list[str | None]


class _Unpriced:
    """The outcome of a span whose model has no price (or that names no model)."""


_UNPRICED: Final = _Unpriced()


class _Priced(NamedTuple):
    cost: Any  # pricing.Cost
    new_reported: Decimal | None  # a client's cost found under another name, to keep
    mismatch: bool


# Not priced (None), unpriced, an error reason (a.COST_ERROR_*), or priced.
_Outcome: TypeAlias = _Unpriced | str | _Priced

# The attributes we write: a span holding none of them gets ours appended.
_WRITTEN_SLOTS: Final = (
    _REPORTED, _PRICING, _OUR_COST, _COST_INPUT, _COST_OUTPUT, _COST_CACHE_READ, _COST_CACHE_WRITE,
    _MISMATCH, _UNPRICED_SLOT, _ERROR,
)  # fmt: skip


# Attributes are appended as pre-encoded wire bytes (otel_receiver.encoded_attributes),
# used only for keys the scan did not find (a key that exists is overwritten in place
# through ``_put``).
_DOUBLE: Final = struct.Struct("<d").pack
_COST_PREFIX: Final = double_prefix(a.GEN_AI_USAGE_COST)
_COST_INPUT_PREFIX: Final = double_prefix(a.GEN_AI_USAGE_COST_INPUT)
_COST_OUTPUT_PREFIX: Final = double_prefix(a.GEN_AI_USAGE_COST_OUTPUT)
_COST_CACHE_READ_PREFIX: Final = double_prefix(a.GEN_AI_USAGE_COST_CACHE_READ)
_COST_CACHE_WRITE_PREFIX: Final = double_prefix(a.GEN_AI_USAGE_COST_CACHE_WRITE)
_REPORTED_PREFIX: Final = double_prefix(a.GEN_AI_COST_REPORTED)
_MISMATCH_TRUE: Final = true_attribute(a.GEN_AI_COST_MISMATCH)
_UNPRICED_TRUE: Final = true_attribute(a.GEN_AI_COST_UNPRICED)


def _put(attrs: Attributes, found: KeyValue | None, key: str) -> AnyValue:
    """The value slot of ``key``: the KeyValue the scan found, or a new one appended.
    Setting a oneof member replaces whatever kind the old value had."""
    if found is None:
        found = attrs.add()
        found.key = key
    return found.value


def _count(v: Any) -> int:
    """A token count: ``_INVALID`` when negative or not a whole number."""
    kind = type(v)
    if kind is int:
        return v if v >= 0 else _INVALID
    if kind is float:
        return int(v) if v >= 0 and v.is_integer() else _INVALID
    if kind is str:
        s = v.strip()
        return int(s) if s.isdigit() else _INVALID
    return _INVALID


def _decimal(v: Any) -> Decimal | None:
    kind = type(v)
    try:
        if kind is float:
            d = Decimal(repr(v))
        elif kind is int:
            d = Decimal(v)
        elif kind is str:
            d = Decimal(v.strip())
        else:
            return None
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


class GenAICostProcessor(Processor):
    signals = frozenset({Signal.TRACES})
    keeps_wire = True  # priced spans are spliced into the request's bytes
    # The fast path appends to the wire alone; the others sync the objects first.
    accepts_lagging_objects = True

    def __init__(self, config: GenAICostConfig, settings: ComponentSettings) -> None:
        super().__init__(config, settings)
        self.cfg = config
        snapshot = None
        label = GENAI_PRICES_LABEL
        if config.prices_file:
            path = config.prices_file
            if not os.path.isabs(path):
                path = os.path.join(settings.config_dir, path)
            snapshot = load_snapshot(path)
            label = f"{GENAI_PRICES_LABEL}+data:{os.path.basename(path)}"
        self.book = PriceBook(snapshot, _build_overrides(config), library_label=label)
        self.exclusive: normalize.ExclusiveSources = frozenset(
            (e.source, normalize.current_provider(e.provider)) for e in config.exclusive_sources
        )
        self.metrics = _METRICS.get(settings.telemetry.registry, _Metrics)
        self._logged_models: set[str] = set()
        self._label_models: set[str] = set()
        self._pricing_bytes: dict[str, bytes] = {}
        self._logged_errors: set[str] = set()
        self._fast = (
            fastpath.FastPricer(
                _SCAN_KEYS,
                (
                    _COST_PREFIX,
                    _COST_INPUT_PREFIX,
                    _COST_OUTPUT_PREFIX,
                    _COST_CACHE_READ_PREFIX,
                    _COST_CACHE_WRITE_PREFIX,
                ),
                _UNPRICED_TRUE,
                self.book,
                self._pricing_attribute,
                config.price_internal_agent_spans,
            )
            if fastpath.available() and spanscan.available()
            else None
        )

    def process_traces(self, batch: ExportTraceServiceRequest, context: RequestContext) -> Batch | None:
        unpriced: Tally[str] = Tally()
        errors: Tally[str] = Tally()
        wire = context.wire_for(batch)
        by_c = False
        if wire is not None and self._fast is not None:
            by_c = self._price_fast(batch, wire, context, unpriced)
        if not by_c:
            context.sync_objects()  # the paths below read and change the objects
            if wire is not None and spanscan.available():
                self._price_scanned(batch, wire, context, unpriced, errors)
            else:
                # Without the request's bytes a serialization would cost about as much as
                # the Python scan of every span's keys that price_span does.
                changes = [
                    self._price_guarded(span, context, unpriced, errors)
                    for rs in batch.resource_spans
                    for ss in rs.scope_spans
                    for span in ss.spans
                ]
                if any(change is not False for change in changes):
                    context.drop_wire()
        for model, n in unpriced.items():
            self.metrics.unpriced.labels(model=self._model_label(model)).inc(n)
        for reason, n in errors.items():
            self.metrics.errors.labels(reason=reason).inc(n)
        return batch

    def _price_fast(
        self,
        batch: ExportTraceServiceRequest,
        wire: bytes,
        context: RequestContext,
        unpriced: Tally[str],
    ) -> bool:
        """The C pass (fastpath.py): True when it priced the request, whose new wire
        then carries the costs while the objects lag behind it; False when a span needs
        the paths below."""
        assert self._fast is not None
        missing: Tally[tuple[str | None, str]] = Tally()
        try:
            handled, new_wire = self._fast.price(wire, context.tenant, context.received_at_ns, missing)
        except Exception:
            # Bytes the C reader refuses, or a price lookup that failed: the paths below
            # decide, span by span, and count and log what fails there.
            return False
        if not handled:
            return False
        if new_wire is not None:
            context.advance_wire(batch, new_wire)
        for (provider, model), n in missing.items():
            self._unpriced(provider, model, unpriced, n)
        return True

    def _price_scanned(
        self,
        batch: ExportTraceServiceRequest,
        wire: bytes,
        context: RequestContext,
        unpriced: Tally[str],
        errors: Tally[str],
    ) -> None:
        """Prices from the values the C scan reads in the request's bytes: a span that
        reports no usage costs no Python object, a fresh one (no legacy name, none of our
        attributes yet) only the append; the others go through ``price_span``. The
        changed spans are spliced into the bytes."""
        edits: list[Edit] = []
        last: tuple[int, int] = (-1, -1)
        spans: Any = None
        tenant, received = context.tenant, context.received_at_ns
        for ri, si, i, _, _, kind, _, start_ns, _, values in spanscan.table(batch, _SCAN_KEYS, (), wire):
            fresh = values[_SLOTS:] == _NO_LEGACY
            if fresh and values[_IN] is None and values[_OUT] is None:
                continue
            if (ri, si) != last:
                spans = batch.resource_spans[ri].scope_spans[si].spans
                last = (ri, si)
            span = spans[i]
            if fresh and all(values[slot] is None for slot in _WRITTEN_SLOTS):
                try:
                    appended = self.price_values(values, kind, start_ns, tenant, received, unpriced, errors)
                except Exception as e:
                    errors[_INTERNAL_ERROR] += 1
                    self._log_internal_error_once(e)
                    continue
                if appended is not None:
                    span.MergeFromString(appended)
                    edits.append((ri, si, i, appended, True))
                continue
            change = self._price_guarded(span, context, unpriced, errors)
            if change is True:
                edits.append((ri, si, i, span.SerializeToString(), False))
            elif change is not False:
                edits.append((ri, si, i, change, True))
        context.splice_wire(batch, edits)

    def _price_guarded(
        self,
        span: Span,
        context: RequestContext,
        unpriced: Tally[str],
        errors: Tally[str],
    ) -> bytes | bool:
        # One span that trips an unforeseen case must not make the receiver refuse the
        # whole batch: it goes on unpriced, counted and logged.
        try:
            return self.price_span(span, context.tenant, context.received_at_ns, unpriced, errors)
        except Exception as e:
            errors[_INTERNAL_ERROR] += 1
            self._log_internal_error_once(e)
            return True  # it may have been half written

    def price_span(
        self,
        span: Span,
        tenant: str | None,
        fallback_ns: int,
        unpriced: Tally[str],
        errors: Tally[str],
    ) -> bytes | bool:
        """Prices one span through its protobuf objects. Returns what changed: the bytes
        appended to the span (its serialization plus them is its new one), True if it
        was changed in place, False if not at all."""
        attrs = span.attributes
        # One scan: the KeyValue of every name we read or write. Iterating an attribute
        # list creates a Python wrapper per entry (upb), so it is done exactly once.
        cur: list[KeyValue | None] = [None] * _SLOTS
        leg: list[KeyValue | None] | None = None
        current = _CURRENT
        legacy = _LEGACY
        for kv in attrs:
            key = kv.key
            slot = current.get(key)
            if slot is not None:
                cur[slot] = kv
                continue
            slot = legacy.get(key)
            if slot is not None:
                if leg is None:
                    leg = [None] * _SLOTS
                if leg[slot] is None or key == a.OI_LLM_PROVIDER:
                    leg[slot] = kv
        if not _reports_usage(cur, leg):
            return False
        values = [None if kv is None else to_python(kv.value) for kv in cur]
        old = None
        if leg is not None:
            old = _Legacy(
                [None if kv is None else to_python(kv.value) for kv in leg],
                [None if kv is None else kv.key for kv in leg],
            )
        start_ns = span.start_time_unix_nano
        outcome = self._decide(values, old, span.kind, start_ns, tenant, fallback_ns, unpriced, errors)
        if outcome is None:
            return False
        if not any(cur[slot] is not None for slot in _WRITTEN_SLOTS):
            appended = self._appended(outcome)
            span.MergeFromString(appended)
            return appended
        # A span priced before (e.g. by an upstream receiver): overwrite in place.
        if isinstance(outcome, _Unpriced):
            _put(attrs, cur[_UNPRICED_SLOT], a.GEN_AI_COST_UNPRICED).bool_value = True
        elif isinstance(outcome, str):
            _put(attrs, cur[_ERROR], a.GEN_AI_COST_ERROR).string_value = outcome
        else:
            cost = outcome.cost
            _put(attrs, cur[_OUR_COST], a.GEN_AI_USAGE_COST).double_value = float(cost.total)
            _put(attrs, cur[_COST_INPUT], a.GEN_AI_USAGE_COST_INPUT).double_value = float(cost.input)
            _put(attrs, cur[_COST_OUTPUT], a.GEN_AI_USAGE_COST_OUTPUT).double_value = float(cost.output)
            if cost.cache_read:
                _put(attrs, cur[_COST_CACHE_READ], a.GEN_AI_USAGE_COST_CACHE_READ).double_value = float(
                    cost.cache_read
                )
            if cost.cache_write:
                _put(attrs, cur[_COST_CACHE_WRITE], a.GEN_AI_USAGE_COST_CACHE_WRITE).double_value = float(
                    cost.cache_write
                )
            _put(attrs, cur[_PRICING], a.GEN_AI_COST_PRICING).string_value = cost.pricing
            if outcome.new_reported is not None:
                _put(attrs, cur[_REPORTED], a.GEN_AI_COST_REPORTED).double_value = float(outcome.new_reported)
            if outcome.mismatch:
                _put(attrs, cur[_MISMATCH], a.GEN_AI_COST_MISMATCH).bool_value = True
        return True

    def price_values(
        self,
        values: Sequence[Any],
        kind: int,
        start_ns: int,
        tenant: str | None,
        fallback_ns: int,
        unpriced: Tally[str],
        errors: Tally[str],
    ) -> bytes | None:
        """Prices a span from the values the C scan read (``_CURRENT`` slots), for spans
        with no legacy name and none of the attributes we write (``_price_scanned``
        checks): the bytes to append to the span, or None when it is not priced."""
        outcome = self._decide(values, None, kind, start_ns, tenant, fallback_ns, unpriced, errors)
        return None if outcome is None else self._appended(outcome)

    def _decide(
        self,
        cur: Sequence[Any],
        leg: _Legacy | None,
        kind: int,
        start_ns: int,
        tenant: str | None,
        fallback_ns: int,
        unpriced: Tally[str],
        errors: Tally[str],
    ) -> _Outcome | None:
        """What pricing a span amounts to, from its attribute values by slot (as
        ``spanscan.to_python`` gives them; None when absent): None (not a priced span),
        ``_Unpriced``, an error reason, or the cost. Counts the unpriced and the errors."""
        if not _reports_usage(cur, leg.values if leg is not None else None):
            return None
        operation = _string(cur[_OP])
        if operation is None and leg is not None:
            operation = _legacy_value(leg.keys[_OP], leg.values[_OP])
            if operation is None and leg.keys[_OP] == a.OPENINFERENCE_SPAN_KIND:
                # CHAIN, RETRIEVER, RERANKER, ...: OpenInference puts a call's own token
                # counts on its LLM/EMBEDDING spans; counts elsewhere are roll-ups.
                return None
        if (
            operation in a.AGENT_OPERATIONS
            and kind != Span.SPAN_KIND_CLIENT
            and not self.cfg.price_internal_agent_spans
        ):
            return None

        response_model = _string(cur[_RESP_MODEL])
        request_model = _string(cur[_REQ_MODEL])
        provider = _string(cur[_PROVIDER])
        if leg is not None:
            if response_model is None:
                response_model = _string(leg.values[_RESP_MODEL])
            if request_model is None:
                request_model = _string(leg.values[_REQ_MODEL])
            if provider is None:
                provider = _legacy_value(leg.keys[_PROVIDER], leg.values[_PROVIDER])
        if response_model is None and request_model is None:
            # Usage with no model to price it by: flagged, counted and logged like an
            # unknown model, never silently skipped.
            return self._unpriced(provider, NO_MODEL_LABEL, unpriced)

        counts = [0] * _SLOTS
        for slot in _TOKEN_SLOTS:
            found = cur[slot]
            if found is None and leg is not None:
                found = leg.values[slot]
            if found is None:
                continue
            n = _count(found)
            if n == _INVALID:
                errors[a.COST_ERROR_INVALID_TOKENS] += 1
                return a.COST_ERROR_INVALID_TOKENS
            counts[slot] = n
        if self.exclusive and leg is not None:
            self._make_inclusive(counts, cur, leg, provider)

        tier = _string(cur[_TIER]) or _string(cur[_REQUEST_TIER])
        if tier is None and leg is not None:
            tier = _string(leg.values[_TIER]) or _string(leg.values[_REQUEST_TIER])
        if tier is not None:
            tier = tier.lower()
            if tier in STANDARD_SERVICE_TIERS:
                tier = None
        prices = self.book.lookup(provider, (response_model or "", request_model or ""), tenant, tier)
        sheet = prices.at(start_ns or fallback_ns) if prices is not None else None
        if sheet is None:
            return self._unpriced(provider, response_model or request_model or "", unpriced)
        # slots _IN.._CACHE_AUDIO_READ are in TokenUsage's field order
        usage = TokenUsage._make(counts[_IN : _CACHE_AUDIO_READ + 1])
        try:
            cost = price_usage(usage, sheet)
        except NegativeRemainderError:
            errors[a.COST_ERROR_NEGATIVE_REMAINDER] += 1
            return a.COST_ERROR_NEGATIVE_REMAINDER

        reported = _decimal(cur[_REPORTED])
        new_reported = None
        if reported is None and leg is not None:
            reported = new_reported = _decimal(leg.values[_REPORTED])
        if reported is None and cur[_PRICING] is None:
            # OpenLIT's own estimate under gen_ai.usage.cost (no pricing label: not ours).
            reported = new_reported = _decimal(cur[_OUR_COST])
        mismatch = reported is not None and self._mismatch(cost.total, reported)
        return _Priced(cost, new_reported, mismatch)

    def _appended(self, outcome: _Outcome) -> bytes:
        """The attributes an outcome adds to a span that holds none of them yet."""
        if isinstance(outcome, _Unpriced):
            return _UNPRICED_TRUE
        if isinstance(outcome, str):
            return string_attribute(a.GEN_AI_COST_ERROR, outcome)
        cost = outcome.cost
        parts = [
            _COST_PREFIX,
            _DOUBLE(float(cost.total)),
            _COST_INPUT_PREFIX,
            _DOUBLE(float(cost.input)),
            _COST_OUTPUT_PREFIX,
            _DOUBLE(float(cost.output)),
        ]
        if cost.cache_read:
            parts += (_COST_CACHE_READ_PREFIX, _DOUBLE(float(cost.cache_read)))
        if cost.cache_write:
            parts += (_COST_CACHE_WRITE_PREFIX, _DOUBLE(float(cost.cache_write)))
        parts.append(self._pricing_attribute(cost.pricing))
        if outcome.new_reported is not None:
            parts += (_REPORTED_PREFIX, _DOUBLE(float(outcome.new_reported)))
        if outcome.mismatch:
            parts.append(_MISMATCH_TRUE)
        return b"".join(parts)

    def _pricing_attribute(self, pricing: str) -> bytes:
        encoded = self._pricing_bytes.get(pricing)
        if encoded is None:
            encoded = string_attribute(a.GEN_AI_COST_PRICING, pricing)
            self._pricing_bytes[pricing] = encoded
        return encoded

    def _mismatch(self, ours: Decimal, reported: Decimal) -> bool:
        difference = EXACT.abs(EXACT.subtract(ours, reported))
        allowed = max(
            self.cfg.mismatch_tolerance_absolute,
            EXACT.multiply(self.cfg.mismatch_tolerance_relative, EXACT.abs(ours)),
        )
        return difference > allowed

    def _make_inclusive(
        self,
        counts: list[int],
        cur: Sequence[Any],
        leg: _Legacy,
        provider: str | None,
    ) -> None:
        in_key = leg.keys[_IN]
        if cur[_IN] is None and in_key is not None:
            source = normalize.source_of_key(in_key)
            if not normalize.counting_for(source, provider, self.exclusive).input_includes_cache:
                counts[_IN] += counts[_CACHE_READ] + counts[_CACHE_WRITE]
        out_key = leg.keys[_OUT]
        if cur[_OUT] is None and out_key is not None:
            source = normalize.source_of_key(out_key)
            if not normalize.counting_for(source, provider, self.exclusive).output_includes_reasoning:
                counts[_OUT] += counts[_REASONING]

    def _model_label(self, model: str) -> str:
        # Model names come from clients: bound the label set of the self-metric.
        if model in self._label_models:
            return model
        if len(self._label_models) >= _MAX_MODEL_LABELS:
            return _OTHER_MODEL
        self._label_models.add(model)
        return model

    def _log_internal_error_once(self, error: Exception) -> None:
        # The message may quote attribute values (PII): log the type and place only.
        kind = type(error).__name__
        if kind in self._logged_errors:
            return
        self._logged_errors.add(kind)
        tb = error.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else "?"
        self.settings.logger.error(
            "genai_cost: %s while pricing a span (at %s); the span is passed on unpriced", kind, where
        )

    def _unpriced(self, provider: str | None, model: str, unpriced: Tally[str], n: int = 1) -> _Unpriced:
        unpriced[model] += n
        self._log_unpriced_once(provider, model)
        return _UNPRICED

    def _log_unpriced_once(self, provider: str | None, model: str) -> None:
        if model in self._logged_models or len(self._logged_models) >= _MAX_MODEL_LABELS:
            return
        self._logged_models.add(model)
        if model == NO_MODEL_LABEL:
            self.settings.logger.warning(
                "genai_cost: spans with token usage but no %s or %s (provider %r) get %s=true",
                a.GEN_AI_REQUEST_MODEL,
                a.GEN_AI_RESPONSE_MODEL,
                provider,
                a.GEN_AI_COST_UNPRICED,
            )
            return
        self.settings.logger.warning(
            "genai_cost: no price for model %r (provider %r); its spans get %s=true. "
            "Add an override to price it.",
            model,
            provider,
            a.GEN_AI_COST_UNPRICED,
        )


def _build_overrides(config: GenAICostConfig) -> list[Override]:
    groups: dict[tuple[str, str, str | None, str | None], list[tuple[object, dict[str, Decimal | None]]]] = {}
    for row in config.overrides:
        provider = normalize.current_provider(row.provider)
        key = (row.name, row.model.lower(), provider, row.tenant)
        groups.setdefault(key, []).append((row.valid_from, row.period_prices()))
    built: list[Override] = []
    for (name, model, provider, tenant), periods in groups.items():
        normalized: list[tuple[datetime | None, Mapping[str, object]]] = []
        for valid_from, prices in periods:
            when: datetime | None
            if isinstance(valid_from, datetime):
                when = valid_from
            elif isinstance(valid_from, date):
                when = datetime(valid_from.year, valid_from.month, valid_from.day, tzinfo=UTC)
            else:
                when = None
            normalized.append((when, prices))
        built.append(
            Override(
                name=name,
                model=model,
                prices=override_prices(name, normalized),
                provider=provider,
                tenant=tenant,
            )
        )
    return built
