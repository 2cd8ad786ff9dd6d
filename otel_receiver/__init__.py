"""OTLP receiver runtime: servers, config, pipelines, queues, registry, CLI, self-telemetry."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("otel-genai-receiver")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"
