"""PII and secret redaction: validated detectors, a one-scan clean path, JSON kept valid (see README.md)."""

from otel_receiver.component import ComponentSettings, Factory, Processor, Signal
from otel_receiver.spanscan import locate
from processors.pii_redaction.config import CustomDetectorConfig, KeyRule, NerConfig, PiiRedactionConfig
from processors.pii_redaction.engine import Redactor, RequestScanner
from processors.pii_redaction.processor import PiiRedactionProcessor


def _create(config: PiiRedactionConfig, settings: ComponentSettings) -> Processor:
    return PiiRedactionProcessor(config, settings)


factory: Factory[PiiRedactionConfig, Processor] = Factory(
    type_name="pii_redaction",
    config_model=PiiRedactionConfig,
    create=_create,
    signals=frozenset({Signal.TRACES, Signal.METRICS, Signal.LOGS}),
    description="Masks, hashes or drops PII and secrets in spans, logs and metrics before export",
)

__all__ = [
    "CustomDetectorConfig",
    "KeyRule",
    "NerConfig",
    "PiiRedactionConfig",
    "PiiRedactionProcessor",
    "Redactor",
    "RequestScanner",
    "factory",
    "locate",
]
