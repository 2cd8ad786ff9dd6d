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
import weakref
from collections import Counter as Tally
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Final

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client import CollectorRegistry, Counter

from otel_receiver.attributes import Attributes, set_bool, set_double, set_str
from otel_receiver.component import (
    Batch,
    ComponentSettings,
    Processor,
    RequestContext,
    Signal,
)
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
_SLOTS = 15

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
_AGENT_OPERATIONS: Final = frozenset({a.OP_INVOKE_AGENT, a.OP_CREATE_AGENT, a.OP_EXECUTE_TOOL})
_INVALID: Final = -1
_MAX_MODEL_LABELS: Final = 500
_OTHER_MODEL: Final = "(other)"

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
            "GenAI spans not priced because their token counts are invalid, by reason",
            ["reason"],
            registry=registry,
        )


_metrics_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, _Metrics] = weakref.WeakKeyDictionary()


def _metrics_for(registry: CollectorRegistry) -> _Metrics:
    """One set of metric objects per registry, shared by every genai_cost instance."""
    metrics = _metrics_by_registry.get(registry)
    if metrics is None:
        metrics = _Metrics(registry)
        _metrics_by_registry[registry] = metrics
    return metrics


def _string(v: AnyValue | None) -> str | None:
    if v is not None and v.WhichOneof("value") == "string_value" and v.string_value:
        return v.string_value
    return None


def _count(v: AnyValue | None) -> int:
    """A token count: 0 when absent, ``_INVALID`` when negative or not a whole number."""
    if v is None:
        return 0
    kind = v.WhichOneof("value")
    if kind == "int_value":
        n = v.int_value
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
        self.metrics = _metrics_for(settings.telemetry.registry)
        self._logged_models: set[str] = set()
        self._label_models: set[str] = set()

    def process_traces(self, batch: ExportTraceServiceRequest, context: RequestContext) -> Batch | None:
        unpriced: Tally[str] = Tally()
        errors: Tally[str] = Tally()
        tenant = context.tenant
        fallback_ns = context.received_at_ns
        for rs in batch.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    self.price_span(span, tenant, fallback_ns, unpriced, errors)
        for model, n in unpriced.items():
            self.metrics.unpriced.labels(model=self._model_label(model)).inc(n)
        for reason, n in errors.items():
            self.metrics.errors.labels(reason=reason).inc(n)
        return batch

    def price_span(
        self,
        span: Span,
        tenant: str | None,
        fallback_ns: int,
        unpriced: Tally[str],
        errors: Tally[str],
    ) -> None:
        attrs = span.attributes
        cur: list[AnyValue | None] = [None] * _SLOTS
        leg: list[AnyValue | None] | None = None
        leg_keys: list[str | None] | None = None
        current = _CURRENT
        legacy = _LEGACY
        for kv in attrs:
            key = kv.key
            slot = current.get(key)
            if slot is not None:
                cur[slot] = kv.value
                continue
            slot = legacy.get(key)
            if slot is not None:
                if leg is None or leg_keys is None:
                    leg = [None] * _SLOTS
                    leg_keys = [None] * _SLOTS
                if leg[slot] is None or key == a.OI_LLM_PROVIDER:
                    leg[slot] = kv.value
                    leg_keys[slot] = key

        in_v = cur[_IN]
        out_v = cur[_OUT]
        if leg is not None:
            in_v = in_v if in_v is not None else leg[_IN]
            out_v = out_v if out_v is not None else leg[_OUT]
        if in_v is None and out_v is None:
            return

        operation = _string(cur[_OP])
        if operation is None and leg is not None and leg_keys is not None:
            operation = self._legacy_value(leg[_OP], leg_keys[_OP])
        if (
            operation in _AGENT_OPERATIONS
            and span.kind != Span.SPAN_KIND_CLIENT
            and not self.cfg.price_internal_agent_spans
        ):
            return

        response_model = _string(cur[_RESP_MODEL])
        request_model = _string(cur[_REQ_MODEL])
        provider = _string(cur[_PROVIDER])
        if leg is not None and leg_keys is not None:
            if response_model is None:
                response_model = _string(leg[_RESP_MODEL])
            if request_model is None:
                request_model = _string(leg[_REQ_MODEL])
            if provider is None:
                provider = self._legacy_value(leg[_PROVIDER], leg_keys[_PROVIDER])
        if response_model is None and request_model is None:
            return

        counts = [0] * _SLOTS
        for slot in _TOKEN_SLOTS:
            v = cur[slot]
            if v is None and leg is not None:
                v = leg[slot]
            n = _count(v)
            if n == _INVALID:
                self._flag_error(attrs, a.COST_ERROR_INVALID_TOKENS, errors)
                return
            counts[slot] = n
        if self.exclusive and leg is not None and leg_keys is not None:
            self._make_inclusive(counts, cur, leg_keys, provider)

        prices = self.book.lookup(provider, (response_model or "", request_model or ""), tenant)
        start_ns = span.start_time_unix_nano or fallback_ns
        sheet = prices.at(start_ns) if prices is not None else None
        if sheet is None:
            model = response_model or request_model or ""
            set_bool(attrs, a.GEN_AI_COST_UNPRICED, True)
            unpriced[model] += 1
            self._log_unpriced_once(provider, model)
            return
        usage = TokenUsage(
            input=counts[_IN],
            output=counts[_OUT],
            cache_read=counts[_CACHE_READ],
            cache_write=counts[_CACHE_WRITE],
            reasoning=counts[_REASONING],
            input_audio=counts[_AUDIO_IN],
            output_audio=counts[_AUDIO_OUT],
            cache_audio_read=counts[_CACHE_AUDIO_READ],
        )
        try:
            cost = price_usage(usage, sheet)
        except NegativeRemainderError:
            self._flag_error(attrs, a.COST_ERROR_NEGATIVE_REMAINDER, errors)
            return

        reported = _decimal(cur[_REPORTED])
        reported_is_new = False
        if reported is None and leg is not None:
            reported = _decimal(leg[_REPORTED])
            reported_is_new = reported is not None
        if reported is None and cur[_PRICING] is None and cur[_OUR_COST] is not None:
            # OpenLIT's own estimate under gen_ai.usage.cost (no pricing label: not ours).
            reported = _decimal(cur[_OUR_COST])
            reported_is_new = reported is not None

        set_double(attrs, a.GEN_AI_USAGE_COST, float(cost.total))
        set_double(attrs, a.GEN_AI_USAGE_COST_INPUT, float(cost.input))
        set_double(attrs, a.GEN_AI_USAGE_COST_OUTPUT, float(cost.output))
        if cost.cache_read:
            set_double(attrs, a.GEN_AI_USAGE_COST_CACHE_READ, float(cost.cache_read))
        if cost.cache_write:
            set_double(attrs, a.GEN_AI_USAGE_COST_CACHE_WRITE, float(cost.cache_write))
        set_str(attrs, a.GEN_AI_COST_PRICING, cost.pricing)
        if reported is not None:
            if reported_is_new:
                set_double(attrs, a.GEN_AI_COST_REPORTED, float(reported))
            if self._mismatch(cost.total, reported):
                set_bool(attrs, a.GEN_AI_COST_MISMATCH, True)

    def _mismatch(self, ours: Decimal, reported: Decimal) -> bool:
        difference = EXACT.abs(EXACT.subtract(ours, reported))
        allowed = max(
            self.cfg.mismatch_tolerance_absolute,
            EXACT.multiply(self.cfg.mismatch_tolerance_relative, EXACT.abs(ours)),
        )
        return difference > allowed

    @staticmethod
    def _legacy_value(v: AnyValue | None, key: str | None) -> str | None:
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

    def _make_inclusive(
        self,
        counts: list[int],
        cur: list[AnyValue | None],
        leg_keys: list[str | None],
        provider: str | None,
    ) -> None:
        in_key = leg_keys[_IN]
        if cur[_IN] is None and in_key is not None:
            source = normalize.source_of_key(in_key)
            if not normalize.counting_for(source, provider, self.exclusive).input_includes_cache:
                counts[_IN] += counts[_CACHE_READ] + counts[_CACHE_WRITE]
        out_key = leg_keys[_OUT]
        if cur[_OUT] is None and out_key is not None:
            source = normalize.source_of_key(out_key)
            if not normalize.counting_for(source, provider, self.exclusive).output_includes_reasoning:
                counts[_OUT] += counts[_REASONING]

    @staticmethod
    def _flag_error(attrs: Attributes, reason: str, errors: Tally[str]) -> None:
        set_str(attrs, a.GEN_AI_COST_ERROR, reason)
        errors[reason] += 1

    def _model_label(self, model: str) -> str:
        # Model names come from clients: bound the label set of the self-metric.
        if model in self._label_models:
            return model
        if len(self._label_models) >= _MAX_MODEL_LABELS:
            return _OTHER_MODEL
        self._label_models.add(model)
        return model

    def _log_unpriced_once(self, provider: str | None, model: str) -> None:
        if model in self._logged_models or len(self._logged_models) >= _MAX_MODEL_LABELS:
            return
        self._logged_models.add(model)
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
