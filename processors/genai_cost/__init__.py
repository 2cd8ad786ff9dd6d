"""GenAI cost attribution: exact USD cost per model-call span (see README.md)."""

from otel_receiver.component import ComponentSettings, Factory, Processor, Signal
from processors.genai_cost.config import ExclusiveSource, GenAICostConfig, PriceOverride
from processors.genai_cost.pricing import (
    CostBreakdown,
    PriceBook,
    PriceSheet,
    TokenUsage,
    price_usage,
)
from processors.genai_cost.processor import GenAICostProcessor


def _create(config: GenAICostConfig, settings: ComponentSettings) -> Processor:
    return GenAICostProcessor(config, settings)


factory: Factory[GenAICostConfig, Processor] = Factory(
    type_name="genai_cost",
    config_model=GenAICostConfig,
    create=_create,
    signals=frozenset({Signal.TRACES}),
    description="Exact USD cost of GenAI spans from genai-prices and override tables",
)

__all__ = [
    "CostBreakdown",
    "ExclusiveSource",
    "GenAICostConfig",
    "GenAICostProcessor",
    "PriceBook",
    "PriceOverride",
    "PriceSheet",
    "TokenUsage",
    "factory",
    "price_usage",
]
