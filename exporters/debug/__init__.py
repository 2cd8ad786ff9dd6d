"""Debug exporter: counts per batch, or the items in a readable form, to stderr, stdout or a file."""

from exporters.debug.config import DebugExporterConfig
from exporters.debug.exporter import DebugExporter, create
from otel_receiver.component import Factory

factory: Factory[DebugExporterConfig, DebugExporter] = Factory(
    type_name="debug",
    config_model=DebugExporterConfig,
    create=create,
    description="writes counts per batch (basic) or the items themselves (normal, detailed)",
)

__all__ = ["DebugExporter", "DebugExporterConfig", "factory"]
