"""Prometheus exporter: GenAI metrics derived from spans, OTLP metrics translated by the
Collector's rules, and the receiver's self-metrics, on one scrape endpoint."""

from exporters.prometheus.config import PrometheusExporterConfig
from exporters.prometheus.exporter import PrometheusExporter, create
from otel_receiver.component import Factory, Signal

factory: Factory[PrometheusExporterConfig, PrometheusExporter] = Factory(
    type_name="prometheus",
    config_model=PrometheusExporterConfig,
    create=create,
    signals=frozenset({Signal.TRACES, Signal.METRICS, Signal.LOGS}),
    description="Prometheus /metrics endpoint: GenAI span metrics, translated OTLP metrics, self-metrics",
)

__all__ = ["PrometheusExporter", "PrometheusExporterConfig", "factory"]
