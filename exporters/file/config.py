"""Config of the file exporter."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from otel_receiver.component import ComponentConfig, ExporterConfig


class RotationConfig(ComponentConfig):
    max_megabytes: int = Field(default=100, ge=1, description="rotate once the file grows beyond this")
    max_days: int | None = Field(
        default=None, ge=1, description="delete rotated files older than this many days; unset keeps all"
    )
    max_backups: int = Field(default=100, ge=0, description="rotated files to keep; 0 keeps all")
    localtime: bool = Field(default=False, description="timestamps in rotated names in local time, not UTC")


class FileExporterConfig(ExporterConfig):
    path: str = Field(min_length=1, description="file to write (relative to the working directory)")
    format: Literal["json", "proto"] = Field(
        default="json",
        description="json: one OTLP/JSON request per line; proto: each request's protobuf bytes after "
        "a 4-byte big-endian length",
    )
    append: bool = Field(default=True, description="append to an existing file; false truncates it at start")
    flush_interval: float = Field(
        default=0.0,
        ge=0,
        description="seconds between flushes to the OS; 0 flushes after every request",
    )
    rotation: RotationConfig | None = Field(default=None, description="rotate the file by size")
