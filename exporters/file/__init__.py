"""File exporter: OTLP/JSON lines (or length-prefixed protobuf), one request per record."""

from exporters.file.config import FileExporterConfig, RotationConfig
from exporters.file.exporter import FileExporter, create, read_records
from otel_receiver.component import Factory

factory: Factory[FileExporterConfig, FileExporter] = Factory(
    type_name="file",
    config_model=FileExporterConfig,
    create=create,
    description="writes each request as one OTLP/JSON line, as the Collector's file exporter does",
)

__all__ = ["FileExporter", "FileExporterConfig", "RotationConfig", "factory", "read_records"]
