"""Anomaly flags: streaming detection of latency, error-rate, token and cost anomalies
on GenAI spans (see README.md). ``Detector`` is the reusable core, free of OTLP."""

from otel_receiver.component import ComponentSettings, Factory, Processor, Signal
from processors.anomaly.config import AnomalyConfig, DetectorConfig, EpisodesConfig, SignalsConfig
from processors.anomaly.detector import DEFAULT_PARAMS, Detector, DetectorParams
from processors.anomaly.processor import AnomalyProcessor


def _create(config: AnomalyConfig, settings: ComponentSettings) -> Processor:
    return AnomalyProcessor(config, settings)


factory: Factory[AnomalyConfig, Processor] = Factory(
    type_name="anomaly",
    config_model=AnomalyConfig,
    create=_create,
    signals=frozenset({Signal.TRACES}),
    description="Flags spans with anomalous latency, error share, tokens or cost for their series",
)

__all__ = [
    "DEFAULT_PARAMS",
    "AnomalyConfig",
    "AnomalyProcessor",
    "Detector",
    "DetectorConfig",
    "DetectorParams",
    "EpisodesConfig",
    "SignalsConfig",
    "factory",
]
