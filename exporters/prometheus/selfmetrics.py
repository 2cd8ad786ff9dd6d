"""The exporter's own metrics, on the shared self-telemetry registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from otel_receiver.telemetry import PerRegistry


class ExporterSelfMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.overflow_items = Counter(
            "otel_receiver_prometheus_overflow_items",
            "Spans or data points folded into a metric's 'other' series because it reached "
            "max_series_per_metric",
            ["exporter", "metric"],
            registry=registry,
        )
        self.series = Gauge(
            "otel_receiver_prometheus_series",
            "Series the Prometheus exporter holds, by origin (spans or otlp)",
            ["exporter", "origin"],
            registry=registry,
        )
        self.expired_series = Counter(
            "otel_receiver_prometheus_expired_series",
            "Series dropped after metric_expiration without an update",
            ["exporter"],
            registry=registry,
        )
        self.dropped_points = Counter(
            "otel_receiver_prometheus_dropped_points",
            "OTLP data points not exposed, by reason",
            ["exporter", "reason"],
            registry=registry,
        )
        self.scrapes = Counter(
            "otel_receiver_prometheus_scrapes",
            "Scrapes of the /metrics endpoint, by format",
            ["exporter", "format"],
            registry=registry,
        )


# Two prometheus exporters (say prometheus/a and prometheus/b) share one registry; they
# share these metric objects and tell themselves apart by the ``exporter`` label.
_BY_REGISTRY: PerRegistry[ExporterSelfMetrics] = PerRegistry()


def self_metrics_for(registry: CollectorRegistry) -> ExporterSelfMetrics:
    return _BY_REGISTRY.get(registry, ExporterSelfMetrics)
