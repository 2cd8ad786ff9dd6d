"""genai_cost's fast path: the C pass over a request's bytes (``_fastcost.c``) and the
price entries it reads, resolved here once per combination of the values that decide a
price (tenant, operation and span kind, provider, models, service tier).

The C pass handles what most requests hold: spans with their usage as integer counts
under the current names and none of our attributes yet. It answers "slow" for anything
else, and the processor then prices the whole request through its objects, as before;
both paths give the same bytes (tests/test_genai_cost_fastpath.py).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Sequence
from decimal import Decimal
from types import ModuleType
from typing import Any, Final

from processors.genai_cost.pricing import (
    EXACT,
    NO_MODEL_LABEL,
    STANDARD_SERVICE_TIERS,
    ModelPrices,
    PriceBook,
    PriceSheet,
    Tiered,
    _Period,
)
from semconv import attributes as a

_fastcost: ModuleType | None
try:
    from processors.genai_cost import _fastcost
except ImportError:  # built without a C compiler: the Python path prices everything
    _fastcost = None

DONE: Final = 0
SLOW: Final = 1
MISSING: Final = 2
_SKIP, _SLOW_ENTRY, _PRICED = 0, 1, 2
_NO_PRICE: Final = -1
_MAX_SCALE: Final = 22  # 10^22 is the largest power of ten a double holds exactly
_MAX_RATE: Final = 1 << 62
_MAX_START_NS: Final = (1 << 63) - 1
_MAX_ENTRIES: Final = 10_000
_NO_TENANT: Final = b"\x00"


def available() -> bool:
    return _fastcost is not None


def scaled_sheet(sheet: PriceSheet) -> tuple[int, int, tuple[int, ...], tuple[int, ...]] | None:
    """A sheet as the C pass reads it: (scale D, per-request price x 10^D, tier starts,
    leaf rates x 10^D for each tier interval), or None when it cannot be exact there."""
    tiered = [
        r
        for r in (
            sheet.input,
            sheet.output,
            sheet.cache_read,
            sheet.cache_write,
            sheet.reasoning,
            sheet.input_audio,
            sheet.output_audio,
            sheet.cache_audio_read,
        )
        if isinstance(r, Tiered)
    ]
    starts = sorted({start for r in tiered for start, _ in r.tiers})
    if any(not 0 <= s < _MAX_START_NS for s in starts):
        return None
    # The leaf rates are constant between tier starts: a total input n in (s_j, s_j+1]
    # pays the rates of s_j + 1 (Tiered.at: a tier applies once the total exceeds it).
    leaf_sets = [sheet.leaf_rates(0), *(sheet.leaf_rates(s + 1) for s in starts)]
    values: list[Decimal | None] = [r for rates in leaf_sets for r in rates]
    every = [v for v in (*values, sheet.per_request) if v is not None]
    if any(not v.is_finite() or v < 0 for v in every):
        return None
    scale = 0
    for v in every:
        exponent = v.as_tuple().exponent
        assert isinstance(exponent, int)  # finite
        scale = max(scale, -exponent)
    if scale > _MAX_SCALE:
        return None

    def scaled(v: Decimal | None) -> int | None:
        if v is None:
            return 0
        n = v.scaleb(scale, EXACT)
        whole = int(n)
        return whole if n == whole and whole < _MAX_RATE else None

    ints = [scaled(v) for v in values]
    per_request = scaled(sheet.per_request)
    if per_request is None or any(i is None for i in ints):
        return None
    return scale, per_request, tuple(starts), tuple(i for i in ints if i is not None)


def _all_periods(prices: ModelPrices) -> list[_Period]:
    periods = list(prices.periods)
    if prices.before_first is not None:
        periods += _all_periods(prices.before_first)
    return periods


def flatten(prices: ModelPrices) -> tuple[tuple[int, ...], tuple[PriceSheet | None, ...]] | None:
    """``prices.at`` as intervals: (starts, sheets) where sheets[k] prices a start time
    with k starts at or before it; None when a daily window makes it depend on the time
    of day."""
    periods = _all_periods(prices)
    if any(p.day_from_ns is not None or p.day_until_ns is not None for p in periods):
        return None
    starts = tuple(sorted({p.start_ns for p in periods if p.start_ns is not None}))
    if any(not 0 <= s < _MAX_START_NS for s in starts):
        return None
    first = prices.at(starts[0] - 1) if starts else prices.at(0)
    return starts, (first, *(prices.at(s) for s in starts))


def _text(raw: bytes | None) -> str | None:
    # As spanscan.to_python decodes a string value.
    return None if raw is None else raw.decode("utf-8", "replace")


class FastPricer:
    """The C table of resolved price entries and the Python side of a call."""

    def __init__(
        self,
        scan_keys: Sequence[str],
        double_prefixes: tuple[bytes, bytes, bytes, bytes, bytes],
        unpriced_attribute: bytes,
        book: PriceBook,
        pricing_attribute: Callable[[str], bytes],
        price_internal_agent_spans: bool,
    ) -> None:
        assert _fastcost is not None
        self.table = _fastcost.CostTable(tuple(scan_keys), double_prefixes, unpriced_attribute, _MAX_ENTRIES)
        self.book = book
        self.pricing_attribute = pricing_attribute
        self.price_internal_agent_spans = price_internal_agent_spans
        self._sheets: dict[PriceSheet, int | None] = {}
        # entry id -> (provider, model) of its spans without a price
        self._unpriced_labels: dict[int, tuple[str | None, str]] = {}

    def price(
        self, wire: bytes, tenant: str | None, fallback_ns: int, unpriced: Tally[tuple[str | None, str]]
    ) -> tuple[bool, bytes | None]:
        """(handled, new wire or None when no span changed); not handled: the request
        needs the Python path. Counts spans without a price by (provider, model)."""
        tenant_key = _NO_TENANT
        if tenant is not None:
            raw = tenant.encode("utf-8", "surrogatepass")
            tenant_key = b"\x01" + len(raw).to_bytes(4, "little") + raw
        for _ in range(4):
            status, payload = self.table.price(wire, tenant_key, fallback_ns)
            if status == SLOW:
                return False, None
            if status == MISSING:
                for row in payload:
                    self._add(row, tenant)
                continue
            new_wire, counts = payload
            for entry, n in counts:
                unpriced[self._unpriced_labels[entry]] += n
            return True, new_wire
        return False, None  # the table kept filling up: this request goes the slow way

    def _add(self, row: tuple[Any, ...], tenant: str | None) -> None:
        key, is_client = row[0], row[1]
        operation, provider, request_model, response_model, tier, request_tier = (_text(v) for v in row[2:])
        label = (provider, response_model or request_model or NO_MODEL_LABEL)
        combination = (is_client, operation, provider, request_model, response_model, tier or request_tier)
        kind, starts, sheets = self._resolve(*combination, tenant)
        added = self.table.add_entry(key, kind, starts, sheets)
        if added is False:
            self.table.clear()
            self._sheets.clear()
            self._unpriced_labels.clear()
            if kind == _PRICED:  # its sheet ids went with the table
                kind, starts, sheets = self._resolve(*combination, tenant)
            added = self.table.add_entry(key, kind, starts, sheets)
        assert added is not False and added is not True
        self._unpriced_labels[added] = label

    def _resolve(
        self,
        is_client: bool,
        operation: str | None,
        provider: str | None,
        request_model: str | None,
        response_model: str | None,
        tier: str | None,
        tenant: str | None,
    ) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
        """The entry of one combination, by the rules of GenAICostProcessor._decide."""
        if operation in a.AGENT_OPERATIONS and not is_client and not self.price_internal_agent_spans:
            return _SKIP, (), ()
        if response_model is None and request_model is None:
            return _PRICED, (), (_NO_PRICE,)
        if tier is not None:
            tier = tier.lower()
            if tier in STANDARD_SERVICE_TIERS:
                tier = None
        prices = self.book.lookup(provider, (response_model or "", request_model or ""), tenant, tier)
        if prices is None:
            return _PRICED, (), (_NO_PRICE,)
        flat = flatten(prices)
        if flat is None:
            return _SLOW_ENTRY, (), ()
        starts, sheets = flat
        ids: list[int] = []
        for sheet in sheets:
            sheet_id = _NO_PRICE if sheet is None else self._sheet_id(sheet)
            if sheet_id is None:
                return _SLOW_ENTRY, (), ()
            ids.append(sheet_id)
        return _PRICED, starts, tuple(ids)

    def _sheet_id(self, sheet: PriceSheet) -> int | None:
        if sheet in self._sheets:
            return self._sheets[sheet]
        scaled = scaled_sheet(sheet)
        sheet_id = None
        if scaled is not None:
            scale, per_request, tier_starts, rates = scaled
            sheet_id = self.table.add_sheet(
                self.pricing_attribute(sheet.pricing), scale, per_request, tier_starts, rates
            )
        self._sheets[sheet] = sheet_id
        return sheet_id
