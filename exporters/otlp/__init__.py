"""OTLP exporter: forwards to Jaeger, the OpenTelemetry Collector or any OTLP backend (gRPC or HTTP)."""

from exporters.otlp.config import OtlpExporterConfig, TlsClientConfig
from exporters.otlp.exporter import OtlpExporter, create
from otel_receiver.component import Factory

factory: Factory[OtlpExporterConfig, OtlpExporter] = Factory(
    type_name="otlp",
    config_model=OtlpExporterConfig,
    create=create,
    description="sends the processed requests as-is over OTLP/gRPC or OTLP/HTTP (protobuf)",
)

__all__ = ["OtlpExporter", "OtlpExporterConfig", "TlsClientConfig", "factory"]
