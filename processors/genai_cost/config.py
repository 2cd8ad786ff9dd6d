"""Configuration of the ``genai_cost`` processor."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import Field, field_validator, model_validator

from otel_receiver.component import ComponentConfig


def _exact_decimal(value: Any) -> Any:
    # YAML gives 0.15 as a float; Decimal(0.15) would be 0.1499999999999999944...
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return value


class PriceOverride(ComponentConfig):
    """One row of the override price table (USD per million tokens)."""

    name: str = Field(min_length=1, description="label written as gen_ai.cost.pricing = override:<name>")
    model: str = Field(
        min_length=1,
        description="model name (case-insensitive, exact); a trailing * matches any model with that prefix",
    )
    provider: str | None = Field(
        default=None, description="gen_ai.provider.name to match (e.g. openai, aws.bedrock); any when unset"
    )
    tenant: str | None = Field(
        default=None, description="authenticated tenant to match; any when unset (tenant rows win)"
    )
    valid_from: datetime | date | None = Field(
        default=None,
        description="span start time from which this row applies; rows of one name/model/provider/"
        "tenant form price periods, and spans before the first fall back to genai-prices",
    )
    input_mtok: Decimal = Field(ge=0, description="uncached input tokens")
    output_mtok: Decimal = Field(default=Decimal(0), ge=0, description="output tokens")
    cache_read_mtok: Decimal | None = Field(
        default=None, ge=0, description="cache reads; input price when unset"
    )
    cache_write_mtok: Decimal | None = Field(
        default=None, ge=0, description="cache writes; input price when unset"
    )
    reasoning_mtok: Decimal | None = Field(
        default=None, ge=0, description="reasoning; output price when unset"
    )
    input_audio_mtok: Decimal | None = Field(
        default=None, ge=0, description="input audio; input price when unset"
    )
    output_audio_mtok: Decimal | None = Field(
        default=None, ge=0, description="output audio; output price when unset"
    )
    cache_audio_read_mtok: Decimal | None = Field(default=None, ge=0, description="cached audio input")
    per_request: Decimal | None = Field(default=None, ge=0, description="fixed USD per call")

    _decimals = field_validator(
        "input_mtok",
        "output_mtok",
        "cache_read_mtok",
        "cache_write_mtok",
        "reasoning_mtok",
        "input_audio_mtok",
        "output_audio_mtok",
        "cache_audio_read_mtok",
        "per_request",
        mode="before",
    )(lambda cls, v: _exact_decimal(v))

    def period_prices(self) -> dict[str, Decimal | None]:
        return {
            "input": self.input_mtok,
            "output": self.output_mtok,
            "cache_read": self.cache_read_mtok,
            "cache_write": self.cache_write_mtok,
            "reasoning": self.reasoning_mtok,
            "input_audio": self.input_audio_mtok,
            "output_audio": self.output_audio_mtok,
            "cache_audio_read": self.cache_audio_read_mtok,
            "per_request": self.per_request,
        }


class ExclusiveSource(ComponentConfig):
    """An emitter whose counts exclude their subsets (e.g. raw Anthropic input_tokens)."""

    source: str = Field(description="a source of the normalisation table: openllmetry, openinference, ...")
    provider: str | None = Field(default=None, description="only for this gen_ai.provider.name")


class GenAICostConfig(ComponentConfig):
    prices_file: str | None = Field(
        default=None,
        description="genai-prices data.json to use instead of the bundled data (offline refresh); "
        "relative paths are resolved against the config file's directory",
    )
    overrides: list[PriceOverride] = Field(
        default_factory=list, description="prices that win over genai-prices"
    )
    mismatch_tolerance_relative: Decimal = Field(
        default=Decimal("0.01"), ge=0, description="reported vs computed cost: allowed relative difference"
    )
    mismatch_tolerance_absolute: Decimal = Field(
        default=Decimal("0.000001"),
        ge=0,
        description="reported vs computed cost: allowed absolute USD difference",
    )
    price_internal_agent_spans: bool = Field(
        default=False,
        description="also price usage on INTERNAL invoke_agent/execute_tool spans (frameworks that put a "
        "model call's own usage on the agent span and emit no model span); off, such usage is "
        "treated as a roll-up of child spans",
    )
    exclusive_sources: list[ExclusiveSource] = Field(
        default_factory=list,
        description="emitters whose legacy-named counts are exclusive (see semconv/README.md)",
    )

    _tolerances = field_validator(
        "mismatch_tolerance_relative", "mismatch_tolerance_absolute", mode="before"
    )(lambda cls, v: _exact_decimal(v))

    @model_validator(mode="after")
    def _unique_periods(self) -> GenAICostConfig:
        seen: set[tuple[str, str, str | None, str | None, str]] = set()
        for o in self.overrides:
            key = (o.name, o.model.lower(), o.provider, o.tenant, str(o.valid_from))
            if key in seen:
                raise ValueError(
                    f"overrides: duplicate row for name={o.name!r} model={o.model!r} "
                    f"provider={o.provider!r} tenant={o.tenant!r} valid_from={o.valid_from}"
                )
            seen.add(key)
        return self
