"""Old and vendor GenAI attribute names -> current OTel GenAI names (see README.md)."""

from otel_receiver.component import ComponentSettings, Factory, Processor, Signal
from processors.genai_normalize.config import GenAINormalizeConfig
from processors.genai_normalize.processor import GenAINormalizeProcessor


def _create(config: GenAINormalizeConfig, settings: ComponentSettings) -> Processor:
    return GenAINormalizeProcessor(config, settings)


factory: Factory[GenAINormalizeConfig, Processor] = Factory(
    type_name="genai_normalize",
    config_model=GenAINormalizeConfig,
    create=_create,
    signals=frozenset(Signal),
    description="Rewrite deprecated and vendor GenAI attribute names to the current OTel names",
)

__all__ = ["GenAINormalizeConfig", "GenAINormalizeProcessor", "factory"]
