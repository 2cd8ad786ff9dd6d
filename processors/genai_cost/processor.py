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
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

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
from otel_receiver.spanscan import Edit, Position
from otel_receiver.telemetry import PerRegistry
from processors.genai_cost.config import GenAICostConfig
from processors.genai_cost.pricing import (
    EXACT,
    GENAI_PRICES_LABEL,
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
_MISMATCH, _UNPRICED, _ERROR = 19, 20, 21
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
    a.GEN_AI_COST_UNPRICED: _UNPRICED,
    a.GEN_AI_COST_ERROR: _ERROR,
    a.OPENAI_RESPONSE_SERVICE_TIER: _TIER,
    a.OPENAI_REQUEST_SERVICE_TIER: _REQUEST_TIER,
}
# Tiers priced as the standard price list.
_STANDARD_TIERS: Final = frozenset({"default", "auto", "standard"})
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
# A span is priced only if it reports input or output tokens: the C scan finds those
# spans, and only they are read through protobuf's Python objects.
_USAGE_KEYS: Final = tuple(
    key for table in (_CURRENT, _LEGACY) for key, slot in table.items() if slot in (_IN, _OUT)
)
_INVALID: Final = -1
_MAX_MODEL_LABELS: Final = 500
_OTHER_MODEL: Final = "(other)"
_NO_MODEL: Final = "(none)"  # the unpriced-spans label of usage reported without a model
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


def _string(kv: KeyValue | None) -> str | None:
    if kv is None:
        return None
    # string_value reads "" for any other kind of value, which is "no model" too.
    return kv.value.string_value or None


def _legacy_value(kv: KeyValue | None) -> str | None:
    """A string from an old or vendor key, with the table's value mapping applied."""
    s = _string(kv)
    if s is None or kv is None:
        return None
    rule = normalize.RULE_BY_KEY.get(kv.key)
    if rule is not None and rule.values is not None:
        if rule.values is normalize.PROVIDER_VALUES:
            return normalize.current_provider(s)
        mapped = rule.values.get(s.lower())
        if mapped is not None:
            return mapped
        if not rule.rename:
            return None
    return s


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


def _count(v: AnyValue | None) -> int:
    """A token count: 0 when absent, ``_INVALID`` when negative or not a whole number."""
    if v is None:
        return 0
    n = v.int_value  # the common case first: one read, no kind check
    if n > 0:
        return n
    kind = v.WhichOneof("value")
    if kind == "int_value":
        return n if n >= 0 else _INVALID
    if kind == "double_value":
        d = v.double_value
        return int(d) if d >= 0 and d.is_integer() else _INVALID
    if kind == "string_value":
        s = v.string_value.strip()
        return int(s) if s.isdigit() else _INVALID
    return _INVALID


def _decimal(v: AnyValue | None) -> Decimal | None:
    if v is None:
        return None
    kind = v.WhichOneof("value")
    try:
        if kind == "double_value":
            d = Decimal(repr(v.double_value))
        elif kind == "int_value":
            d = Decimal(v.int_value)
        elif kind == "string_value":
            d = Decimal(v.string_value.strip())
        else:
            return None
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


class GenAICostProcessor(Processor):
    signals = frozenset({Signal.TRACES})
    keeps_wire = True  # priced spans are spliced into the request's bytes

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

    def process_traces(self, batch: ExportTraceServiceRequest, context: RequestContext) -> Batch | None:
        unpriced: Tally[str] = Tally()
        errors: Tally[str] = Tally()
        tenant = context.tenant
        fallback_ns = context.received_at_ns
        edits: list[Edit] | None = []
        for place, span in self._usage_spans(batch, context):
            # One span that trips an unforeseen case must not make the receiver
            # refuse the whole batch: it goes on unpriced, counted and logged.
            try:
                change = self.price_span(span, tenant, fallback_ns, unpriced, errors)
            except Exception as e:
                change = True  # it may have been half written
                errors[_INTERNAL_ERROR] += 1
                self._log_internal_error_once(e)
            if change is False or edits is None:
                continue
            if place is None:
                edits = None
                context.drop_wire()
            elif change is True:
                edits.append((*place, span.SerializeToString(), False))
            else:
                edits.append((*place, change, True))
        if edits:
            context.splice_wire(batch, edits)
        for model, n in unpriced.items():
            self.metrics.unpriced.labels(model=self._model_label(model)).inc(n)
        for reason, n in errors.items():
            self.metrics.errors.labels(reason=reason).inc(n)
        return batch

    @staticmethod
    def _usage_spans(
        batch: ExportTraceServiceRequest, context: RequestContext
    ) -> list[tuple[Position | None, Span]]:
        """The spans that report token usage (or a superset: usage keys on an event) with
        their places, found in the request's bytes by the C scan; without the bytes (a
        serialization would cost about as much as the Python scan of every span's keys
        that price_span does anyway) every span, with no place."""
        wire = context.wire_for(batch)
        if not spanscan.available() or wire is None:
            return [(None, span) for rs in batch.resource_spans for ss in rs.scope_spans for span in ss.spans]
        spans: list[tuple[Position | None, Span]] = []
        last: tuple[int, int] = (-1, -1)
        scope_spans: Any = None
        for place in spanscan.positions(batch, _USAGE_KEYS, (), wire):
            ri, si, i = place
            if (ri, si) != last:
                scope_spans = batch.resource_spans[ri].scope_spans[si].spans
                last = (ri, si)
            spans.append((place, scope_spans[i]))
        return spans

    def price_span(
        self,
        span: Span,
        tenant: str | None,
        fallback_ns: int,
        unpriced: Tally[str],
        errors: Tally[str],
    ) -> bytes | bool:
        """Prices one span. Returns what changed: the bytes appended to the span (its
        serialization plus them is its new one), True if it was changed in place, False
        if not at all."""
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

        in_kv = cur[_IN]
        out_kv = cur[_OUT]
        if leg is not None:
            in_kv = in_kv if in_kv is not None else leg[_IN]
            out_kv = out_kv if out_kv is not None else leg[_OUT]
        if in_kv is None and out_kv is None:
            return False

        operation = _string(cur[_OP])
        if operation is None and leg is not None:
            legacy_op = leg[_OP]
            operation = _legacy_value(legacy_op)
            if operation is None and legacy_op is not None and legacy_op.key == a.OPENINFERENCE_SPAN_KIND:
                # CHAIN, RETRIEVER, RERANKER, ...: OpenInference puts a call's own token
                # counts on its LLM/EMBEDDING spans; counts elsewhere are roll-ups.
                return False
        if (
            operation in a.AGENT_OPERATIONS
            and span.kind != Span.SPAN_KIND_CLIENT
            and not self.cfg.price_internal_agent_spans
        ):
            return False

        response_model = _string(cur[_RESP_MODEL])
        request_model = _string(cur[_REQ_MODEL])
        provider = _string(cur[_PROVIDER])
        if leg is not None:
            if response_model is None:
                response_model = _string(leg[_RESP_MODEL])
            if request_model is None:
                request_model = _string(leg[_REQ_MODEL])
            if provider is None:
                provider = _legacy_value(leg[_PROVIDER])
        if response_model is None and request_model is None:
            # Usage with no model to price it by: flagged, counted and logged like an
            # unknown model, never silently skipped.
            return self._mark_unpriced(span, attrs, cur, provider, _NO_MODEL, unpriced)

        counts = [0] * _SLOTS
        for slot in _TOKEN_SLOTS:
            found = cur[slot]
            if found is None and leg is not None:
                found = leg[slot]
            if found is None:
                continue
            n = _count(found.value)
            if n == _INVALID:
                self._flag_error(attrs, cur, a.COST_ERROR_INVALID_TOKENS, errors)
                return True
            counts[slot] = n
        if self.exclusive and leg is not None:
            self._make_inclusive(counts, cur, leg, provider)

        tier = _string(cur[_TIER]) or _string(cur[_REQUEST_TIER])
        if tier is None and leg is not None:
            tier = _string(leg[_TIER]) or _string(leg[_REQUEST_TIER])
        if tier is not None:
            tier = tier.lower()
            if tier in _STANDARD_TIERS:
                tier = None
        prices = self.book.lookup(provider, (response_model or "", request_model or ""), tenant, tier)
        start_ns = span.start_time_unix_nano or fallback_ns
        sheet = prices.at(start_ns) if prices is not None else None
        if sheet is None:
            model = response_model or request_model or ""
            return self._mark_unpriced(span, attrs, cur, provider, model, unpriced)
        # slots _IN.._CACHE_AUDIO_READ are in TokenUsage's field order
        usage = TokenUsage._make(counts[_IN : _CACHE_AUDIO_READ + 1])
        try:
            cost = price_usage(usage, sheet)
        except NegativeRemainderError:
            self._flag_error(attrs, cur, a.COST_ERROR_NEGATIVE_REMAINDER, errors)
            return True

        reported_kv = cur[_REPORTED]
        reported = _decimal(reported_kv.value) if reported_kv is not None else None
        reported_is_new = False
        legacy_reported = leg[_REPORTED] if leg is not None else None
        if reported is None and legacy_reported is not None:
            reported = _decimal(legacy_reported.value)
            reported_is_new = reported is not None
        our_cost = cur[_OUR_COST]
        if reported is None and cur[_PRICING] is None and our_cost is not None:
            # OpenLIT's own estimate under gen_ai.usage.cost (no pricing label: not ours).
            reported = _decimal(our_cost.value)
            reported_is_new = reported is not None

        mismatch = reported is not None and self._mismatch(cost.total, reported)
        if (
            our_cost is None
            and cur[_COST_INPUT] is None
            and cur[_COST_OUTPUT] is None
            and cur[_COST_CACHE_READ] is None
            and cur[_COST_CACHE_WRITE] is None
            and cur[_PRICING] is None
            and cur[_MISMATCH] is None
            and (reported_kv is None or not reported_is_new)
        ):
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
            if reported is not None and reported_is_new:
                parts += (_REPORTED_PREFIX, _DOUBLE(float(reported)))
            if mismatch:
                parts.append(_MISMATCH_TRUE)
            appended = b"".join(parts)
            span.MergeFromString(appended)
            return appended
        # A span priced before (e.g. by an upstream receiver): overwrite in place.
        _put(attrs, our_cost, a.GEN_AI_USAGE_COST).double_value = float(cost.total)
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
        if reported is not None and reported_is_new:
            _put(attrs, reported_kv, a.GEN_AI_COST_REPORTED).double_value = float(reported)
        if mismatch:
            _put(attrs, cur[_MISMATCH], a.GEN_AI_COST_MISMATCH).bool_value = True
        return True

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
        cur: list[KeyValue | None],
        leg: list[KeyValue | None],
        provider: str | None,
    ) -> None:
        in_kv = leg[_IN]
        if cur[_IN] is None and in_kv is not None:
            source = normalize.source_of_key(in_kv.key)
            if not normalize.counting_for(source, provider, self.exclusive).input_includes_cache:
                counts[_IN] += counts[_CACHE_READ] + counts[_CACHE_WRITE]
        out_kv = leg[_OUT]
        if cur[_OUT] is None and out_kv is not None:
            source = normalize.source_of_key(out_kv.key)
            if not normalize.counting_for(source, provider, self.exclusive).output_includes_reasoning:
                counts[_OUT] += counts[_REASONING]

    @staticmethod
    def _flag_error(attrs: Attributes, cur: list[KeyValue | None], reason: str, errors: Tally[str]) -> None:
        _put(attrs, cur[_ERROR], a.GEN_AI_COST_ERROR).string_value = reason
        errors[reason] += 1

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

    def _mark_unpriced(
        self,
        span: Span,
        attrs: Attributes,
        cur: list[KeyValue | None],
        provider: str | None,
        model: str,
        unpriced: Tally[str],
    ) -> bytes | bool:
        unpriced[model] += 1
        self._log_unpriced_once(provider, model)
        if cur[_UNPRICED] is None:
            span.MergeFromString(_UNPRICED_TRUE)
            return _UNPRICED_TRUE
        _put(attrs, cur[_UNPRICED], a.GEN_AI_COST_UNPRICED).bool_value = True
        return True

    def _log_unpriced_once(self, provider: str | None, model: str) -> None:
        if model in self._logged_models or len(self._logged_models) >= _MAX_MODEL_LABELS:
            return
        self._logged_models.add(model)
        if model == _NO_MODEL:
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
