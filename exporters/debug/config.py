"""Config of the debug exporter."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from otel_receiver.component import ExporterConfig


class DebugExporterConfig(ExporterConfig):
    verbosity: Literal["basic", "normal", "detailed"] = Field(
        default="basic",
        description=(
            "basic: one line per batch with its counts; normal: one line per span, data point "
            "or log record; detailed: every field of every item, several lines each"
        ),
    )
    output: str = Field(
        default="stderr",
        min_length=1,
        description="stderr, stdout, or the path of a file to append to (relative to the working directory)",
    )
    sampling_initial: int = Field(
        default=2, ge=1, description="batches written in full each second before sampling starts"
    )
    sampling_thereafter: int = Field(
        default=1,
        ge=1,
        description="after sampling_initial in a second, write every Nth batch; 1 writes all",
    )
