"""Exact pricing of one model call: token classes, tiers, price periods, overrides.

``price_usage`` is the pure function (usage + price sheet -> ``CostBreakdown``, all
``Decimal``) that the processor and the ClickHouse exporter share. ``PriceBook`` turns a
(provider, model, tenant, span start time) into a ``PriceSheet``: it asks genai-prices
once per (provider, model) and keeps that model's price periods, so the per-span work is
an integer comparison against the period boundaries, never the library's model matching
(about 100 µs a call).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Context, Decimal, InvalidOperation, Overflow
from pathlib import Path
from typing import Any, Final, NamedTuple

import genai_prices
from genai_prices import data_snapshot
from genai_prices import types as gp

log = logging.getLogger(__name__)

GENAI_PRICES_LABEL: Final = f"genai-prices@{genai_prices.__version__}"
ZERO: Final = Decimal(0)
# Service tiers priced as the standard price list.
STANDARD_SERVICE_TIERS: Final = frozenset({"default", "auto", "standard"})
# The unpriced-spans label of usage reported without a model.
NO_MODEL_LABEL: Final = "(none)"
_NS_PER_DAY: Final = 86_400 * 1_000_000_000
_NS_PER_SECOND: Final = 1_000_000_000

# Enough digits that no product of a token count and a per-token rate, nor any sum of a
# billion of them, is ever rounded: every operation below is exact.
EXACT: Final = Context(prec=80, traps=[InvalidOperation, Overflow])

# OTel gen_ai.provider.name -> genai-prices provider id, where they differ.
PROVIDER_IDS: Final[Mapping[str, str]] = {
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "aws.bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "mistral_ai": "mistral",
    "x_ai": "x-ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "openai": "openai",
    "anthropic": "anthropic",
}


class NegativeRemainderError(ValueError):
    """A subset count (cache, reasoning, audio) exceeds the total it belongs to."""


class TokenUsage(NamedTuple):
    """Token counts with OTel semantics: ``input`` includes cache reads, cache writes and
    input audio; ``output`` includes reasoning and output audio; ``cache_audio_read`` is
    part of both ``cache_read`` and ``input_audio``."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0
    input_audio: int = 0
    output_audio: int = 0
    cache_audio_read: int = 0


@dataclass(frozen=True, slots=True)
class Tiered:
    """A per-token rate that depends on the request's total input tokens: once the total
    exceeds a tier's ``start``, every token of the unit pays that tier's rate (the
    providers' and genai-prices' "cliff" model)."""

    base: Decimal
    tiers: tuple[tuple[int, Decimal], ...]  # (start, rate) ascending

    def at(self, total_input: int) -> Decimal:
        rate = self.base
        for start, tier_rate in self.tiers:
            if total_input > start:
                rate = tier_rate
            else:
                break
        return rate


Rate = Decimal | Tiered


def _rate_at(rate: Rate | None, total_input: int) -> Decimal | None:
    if rate is None or isinstance(rate, Decimal):
        return rate
    return rate.at(total_input)


# Effective per-token rates of the eight leaf classes, parents' rates filled in:
# (text input, audio input, cached text, cached audio, cache write, text output,
#  reasoning, audio output).
LeafRates = tuple[
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
    Decimal | None,
]


@dataclass(frozen=True, slots=True)
class PriceSheet:
    """Per-token USD rates of one model in one price period. ``None`` means the table
    has no separate price for that class: its tokens are priced as their parent class
    (cache read as input, reasoning as output, ...), exactly like genai-prices does."""

    pricing: str  # the gen_ai.cost.pricing value
    input: Rate | None = None
    output: Rate | None = None
    cache_read: Rate | None = None
    cache_write: Rate | None = None
    reasoning: Rate | None = None
    input_audio: Rate | None = None
    output_audio: Rate | None = None
    cache_audio_read: Rate | None = None
    per_request: Decimal | None = None
    _flat: LeafRates | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rates = (
            self.input,
            self.output,
            self.cache_read,
            self.cache_write,
            self.reasoning,
            self.input_audio,
            self.output_audio,
            self.cache_audio_read,
        )
        if not any(isinstance(r, Tiered) for r in rates):
            object.__setattr__(self, "_flat", self._leaf_rates(0))

    def leaf_rates(self, total_input: int) -> LeafRates:
        flat = self._flat
        return flat if flat is not None else self._leaf_rates(total_input)

    def _leaf_rates(self, n: int) -> LeafRates:
        text_in = _rate_at(self.input, n)
        output = _rate_at(self.output, n)
        cache_read = _rate_at(self.cache_read, n)
        audio_in = _rate_at(self.input_audio, n)
        if self.cache_audio_read is not None:
            cached_audio = _rate_at(self.cache_audio_read, n)
        elif cache_read is not None:
            cached_audio = cache_read
        else:
            cached_audio = audio_in if audio_in is not None else text_in
        cache_write = _rate_at(self.cache_write, n)
        reasoning = _rate_at(self.reasoning, n)
        audio_out = _rate_at(self.output_audio, n)
        return (
            text_in,
            audio_in if audio_in is not None else text_in,
            cache_read if cache_read is not None else text_in,
            cached_audio,
            cache_write if cache_write is not None else text_in,
            output,
            reasoning if reasoning is not None else output,
            audio_out if audio_out is not None else output,
        )


class CostBreakdown(NamedTuple):
    """USD, exact. ``total == input + output + cache_read + cache_write + request``."""

    total: Decimal
    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    request: Decimal
    pricing: str


_mul = EXACT.multiply
_add = EXACT.add


def price_usage(usage: TokenUsage, sheet: PriceSheet) -> CostBreakdown:
    """Price each leaf count exactly once.

    Leaves: uncached text input, uncached audio input, cache-read text, cache-read audio,
    cache writes, text output, reasoning, output audio. A tier is chosen by the total
    input tokens. Raises ``NegativeRemainderError`` when a subset exceeds its total (a
    data error, never priced)."""
    total_in, total_out, cache_read, cache_write, reasoning, input_audio, output_audio, cached_audio = usage
    cache_read_text = cache_read - cached_audio
    audio_in = input_audio - cached_audio
    text_in = total_in - cache_read - cache_write - audio_in
    text_out = total_out - reasoning - output_audio
    if (
        text_in < 0
        or text_out < 0
        or cache_read_text < 0
        or audio_in < 0
        or cached_audio < 0
        or cache_write < 0
        or reasoning < 0
        or output_audio < 0
    ):
        raise NegativeRemainderError(f"token subsets exceed their totals: {usage!r}")
    (
        r_text_in,
        r_audio_in,
        r_cache_text,
        r_cache_audio,
        r_cache_write,
        r_text_out,
        r_reasoning,
        r_audio_out,
    ) = sheet.leaf_rates(total_in)
    input_cost = _mul(r_text_in, text_in) if text_in and r_text_in is not None else ZERO
    if audio_in and r_audio_in is not None:
        input_cost = _add(input_cost, _mul(r_audio_in, audio_in))
    cache_read_cost = (
        _mul(r_cache_text, cache_read_text) if cache_read_text and r_cache_text is not None else ZERO
    )
    if cached_audio and r_cache_audio is not None:
        cache_read_cost = _add(cache_read_cost, _mul(r_cache_audio, cached_audio))
    cache_write_cost = _mul(r_cache_write, cache_write) if cache_write and r_cache_write is not None else ZERO
    output_cost = _mul(r_text_out, text_out) if text_out and r_text_out is not None else ZERO
    if reasoning and r_reasoning is not None:
        output_cost = _add(output_cost, _mul(r_reasoning, reasoning))
    if output_audio and r_audio_out is not None:
        output_cost = _add(output_cost, _mul(r_audio_out, output_audio))
    request_cost = sheet.per_request if sheet.per_request is not None else ZERO
    total = _add(_add(input_cost, output_cost), _add(cache_read_cost, cache_write_cost))
    if request_cost:
        total = _add(total, request_cost)
    return CostBreakdown(
        total, input_cost, output_cost, cache_read_cost, cache_write_cost, request_cost, sheet.pricing
    )


# --- From genai-prices ------------------------------------------------------------------

_MTOK_FIELDS: Final[Mapping[str, str]] = {
    "input": "input_mtok",
    "output": "output_mtok",
    "cache_read": "cache_read_mtok",
    # Anthropic's default cache lifetime is 5 minutes; OTel has no TTL attribute, so
    # cache_write_mtok (5-minute writes) is the price of every cache write.
    "cache_write": "cache_write_mtok",
    "reasoning": "output_reasoning_mtok",
    "input_audio": "input_audio_mtok",
    "output_audio": "output_audio_mtok",
    "cache_audio_read": "cache_audio_read_mtok",
}


def per_token(mtok: Decimal) -> Decimal:
    return mtok.scaleb(-6, EXACT)


def _rate_from(value: object) -> Rate | None:
    if value is None:
        return None
    if isinstance(value, gp.TieredPrices):
        return Tiered(
            base=per_token(value.base),
            tiers=tuple((t.start, per_token(t.price)) for t in sorted(value.tiers, key=lambda t: t.start)),
        )
    if isinstance(value, Decimal):
        return per_token(value)
    return None


def sheet_from_model_price(price: gp.ModelPrice, pricing: str) -> PriceSheet:
    rates = {name: _rate_from(getattr(price, key, None)) for name, key in _MTOK_FIELDS.items()}
    requests = getattr(price, "requests_kcount", None)
    per_request = requests.scaleb(-3, EXACT) if isinstance(requests, Decimal) else None
    return PriceSheet(pricing=pricing, per_request=per_request, **rates)


@dataclass(frozen=True, slots=True)
class _Period:
    """One conditional price: active from ``start_ns`` (a start date), or daily between
    two UTC times of day (off-peak prices)."""

    sheet: PriceSheet
    start_ns: int | None = None
    day_from_ns: int | None = None
    day_until_ns: int | None = None

    def active(self, at_ns: int) -> bool:
        if self.start_ns is not None:
            return at_ns >= self.start_ns
        if self.day_from_ns is not None and self.day_until_ns is not None:
            t = at_ns % _NS_PER_DAY
            if self.day_until_ns < self.day_from_ns:
                return t >= self.day_from_ns or t < self.day_until_ns
            return self.day_from_ns <= t < self.day_until_ns
        return True


def _ns_of_date(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * _NS_PER_SECOND


def _ns_of_time(t: time) -> int:
    if t.tzinfo is not None:
        t = datetime.combine(date(1970, 1, 1), t).astimezone(UTC).time()
    return ((t.hour * 60 + t.minute) * 60 + t.second) * _NS_PER_SECOND + t.microsecond * 1000


@dataclass(frozen=True, slots=True)
class ModelPrices:
    """Every price period of one model; ``at`` picks the one of a span's start time
    (later periods win, the first is the fallback, as in genai-prices)."""

    periods: tuple[_Period, ...]
    # For overrides that start at a date: who prices the spans before it (None: unpriced).
    before_first: ModelPrices | None = None
    dated_start: bool = False

    def at(self, start_ns: int) -> PriceSheet | None:
        periods = self.periods
        if len(periods) == 1 and not self.dated_start:
            return periods[0].sheet
        for period in reversed(periods):
            if period.active(start_ns):
                return period.sheet
        if self.dated_start:
            return self.before_first.at(start_ns) if self.before_first is not None else None
        return periods[0].sheet


def model_prices_from(
    model: gp.ModelInfo, pricing: str, context: Mapping[str, str] | None = None
) -> ModelPrices:
    """The price periods of ``model``; with ``context`` (e.g. ``{"service_tier": "flex"}``)
    the model's matching price variants are applied, each from its own start date."""
    if context and model.price_variants:
        with_variants = _model_prices_with_variants(model, pricing, context)
        if with_variants is not None:
            return with_variants
    if isinstance(model.prices, gp.ModelPrice):
        return ModelPrices((_Period(sheet_from_model_price(model.prices, pricing)),))
    periods: list[_Period] = []
    for conditional in model.prices:
        sheet = sheet_from_model_price(conditional.prices, pricing)
        c = conditional.constraint
        if isinstance(c, gp.StartDateConstraint):
            periods.append(_Period(sheet, start_ns=_ns_of_date(c.start_date)))
        elif isinstance(c, gp.TimeOfDateConstraint):
            periods.append(
                _Period(sheet, day_from_ns=_ns_of_time(c.start_time), day_until_ns=_ns_of_time(c.end_time))
            )
        else:
            periods.append(_Period(sheet))
    if not periods:
        periods.append(_Period(PriceSheet(pricing=pricing)))
    return ModelPrices(tuple(periods))


def _model_prices_with_variants(
    model: gp.ModelInfo, pricing: str, context: Mapping[str, str]
) -> ModelPrices | None:
    """Periods between every start date of the standard prices and of the matching
    variants, each resolved by genai-prices' own ``ModelInfo.get_prices`` at the period's
    start, so its precedence rules apply unchanged. None when a daily time window is
    involved (no such model has variants today): then variants are not applied."""
    matching = [v for v in model.price_variants or () if all(context.get(k) == w for k, w in v.when.items())]
    if not matching:
        return None
    constraints = [v.constraint for v in matching]
    if isinstance(model.prices, list):
        constraints += [c.constraint for c in model.prices]
    starts: set[date] = set()
    for c in constraints:
        if isinstance(c, gp.TimeOfDateConstraint):
            return None
        if isinstance(c, gp.StartDateConstraint):
            starts.add(c.start_date)
    ordered = sorted(starts)
    before = datetime.combine(ordered[0], time(0), UTC) - timedelta(days=1) if ordered else datetime.now(UTC)
    periods = [_Period(sheet_from_model_price(model.get_prices(before, context), pricing))]
    for day in ordered:
        at = datetime.combine(day, time(0), UTC)
        periods.append(
            _Period(sheet_from_model_price(model.get_prices(at, context), pricing), start_ns=_ns_of_date(day))
        )
    return ModelPrices(tuple(periods))


def load_snapshot(path: str | Path) -> data_snapshot.DataSnapshot:
    """genai-prices data from a file the user supplies (the JSON its updater downloads,
    ``prices/new_data/v2/data.json``), for machines without internet access. genai-prices
    0.2.3 only exposes HTTP fetching (UpdatePrices); the parsing it uses for that payload
    is ``types._providers_from_raw``, which the pinned version makes safe to call."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a JSON array of providers (genai-prices data.json)")
    providers = gp._providers_from_raw(raw)
    return data_snapshot.DataSnapshot(providers=providers, from_auto_update=False)


# --- Overrides -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Override:
    """A price from the processor config: wins over genai-prices for matching spans."""

    name: str
    model: str  # lower-cased; a trailing "*" matches any model starting with the rest
    prices: ModelPrices
    provider: str | None = None  # OTel gen_ai.provider.name, lower-cased
    tenant: str | None = None

    def matches_model(self, model: str) -> bool:
        if self.model.endswith("*"):
            return model.startswith(self.model[:-1])
        return model == self.model


# --- The book ---------------------------------------------------------------------------------

_CACHE_LIMIT: Final = 10_000


class PriceBook:
    """Resolves and caches prices per (provider, model, tenant); thread-safe enough for
    the runtime (dict writes are atomic; a lost race resolves twice, same answer).

    Model names come from clients, so the caches are bounded: when full they are cleared
    rather than grown without limit."""

    def __init__(
        self,
        snapshot: data_snapshot.DataSnapshot | None = None,
        overrides: Sequence[Override] = (),
        library_label: str = GENAI_PRICES_LABEL,
    ) -> None:
        self.snapshot = snapshot if snapshot is not None else data_snapshot.get_snapshot()
        self.library_label = library_label
        self._overrides = tuple(overrides)
        self._cache: dict[tuple[str | None, str, str | None, str | None], ModelPrices | None] = {}

    def lookup(
        self,
        provider: str | None,
        models: Iterable[str],
        tenant: str | None,
        service_tier: str | None = None,
    ) -> ModelPrices | None:
        """Prices of the first of ``models`` (response model, then request model) that an
        override or genai-prices knows; None when neither does. ``service_tier`` (OpenAI's
        flex / priority ...) selects genai-prices' price variants; overrides ignore it."""
        for model in models:
            if not model:
                continue
            key = (provider, model, tenant, service_tier)
            try:
                found = self._cache[key]
            except KeyError:
                found = self._resolve(provider, model, tenant, service_tier)
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[key] = found
            if found is not None:
                return found
        return None

    def _resolve(
        self, provider: str | None, model: str, tenant: str | None, service_tier: str | None
    ) -> ModelPrices | None:
        model_l = model.lower()
        provider_l = provider.lower() if provider else None
        best: Override | None = None
        for o in self._overrides:
            if o.tenant is not None and o.tenant != tenant:
                continue
            if o.provider is not None and o.provider != provider_l:
                continue
            if not o.matches_model(model_l):
                continue
            if best is None or _specificity(o) > _specificity(best):
                best = o
        library: ModelPrices | None = None
        found = self._library_model(provider_l, model_l)
        if found is not None:
            own_provider, info = found
            # genai-prices applies variants only to a provider's own models, not to those
            # it borrows from a fallback provider (ModelInfo.calc_price): so do we.
            context = (
                {"service_tier": service_tier}
                if service_tier and any(info is m for m in own_provider.models)
                else None
            )
            library = model_prices_from(info, self.library_label, context)
        if best is None:
            return library
        if best.prices.dated_start:
            return ModelPrices(best.prices.periods, before_first=library, dated_start=True)
        return best.prices

    def _library_model(self, provider: str | None, model: str) -> tuple[gp.Provider, gp.ModelInfo] | None:
        provider_id: str | None = None
        if provider == "litellm":
            # A LiteLLM proxy names the real provider in the model ("anthropic/claude-...");
            # genai-prices resolves that form itself for provider id "litellm".
            provider_id = provider
        elif provider is not None:
            provider_id = PROVIDER_IDS.get(provider)
            if provider_id is None:
                found = data_snapshot.find_provider_by_id(self.snapshot.providers, provider)
                if found is None:
                    # A provider genai-prices does not know (self-hosted, watsonx, ...):
                    # matching the model name alone would borrow another vendor's price.
                    return None
                provider_id = found.id
        try:
            return self.snapshot.find_provider_model(model, None, provider_id, None)
        except LookupError:
            return None


def _specificity(o: Override) -> tuple[bool, bool, bool, int]:
    return (o.tenant is not None, not o.model.endswith("*"), o.provider is not None, len(o.model))


def override_prices(name: str, periods: Sequence[tuple[datetime | None, Mapping[str, Any]]]) -> ModelPrices:
    """Build an override's periods from ``(valid_from, {field: per-million Decimal})``."""
    label = f"override:{name}"
    built: list[_Period] = []
    for valid_from, mtok in sorted(periods, key=lambda p: p[0] or datetime.min.replace(tzinfo=UTC)):
        rates: dict[str, Any] = {}
        for name in _MTOK_FIELDS:
            value = mtok.get(name)
            rates[name] = per_token(value) if isinstance(value, Decimal) else None
        per_request = mtok.get("per_request")
        sheet = PriceSheet(
            pricing=label,
            per_request=per_request if isinstance(per_request, Decimal) else None,
            **rates,
        )
        start_ns = None
        if valid_from is not None:
            aware = valid_from if valid_from.tzinfo else valid_from.replace(tzinfo=UTC)
            start_ns = int(aware.timestamp()) * _NS_PER_SECOND
        built.append(_Period(sheet, start_ns=start_ns))
    return ModelPrices(tuple(built), dated_start=bool(built) and built[0].start_ns is not None)
