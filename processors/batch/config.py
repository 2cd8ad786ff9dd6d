"""Config of the batch processor (the Collector's batch processor settings)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from otel_receiver.component import ComponentConfig

_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(ns|us|µs|ms|s|m|h)?\s*")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _seconds(value: Any) -> Any:
    """Numbers are seconds; strings may carry a Go duration unit as in Collector configs
    ("200ms", "1s", "1.5m")."""
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match is None:
            raise ValueError("expected seconds or a duration such as 200ms, 1s, 1m")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


Seconds = Annotated[float, BeforeValidator(_seconds)]


class BatchProcessorConfig(ComponentConfig):
    send_batch_size: int = Field(
        default=8192,
        ge=1,
        description="items (spans, data points, log records) that trigger a send regardless of timeout",
    )
    send_batch_max_size: int = Field(
        default=0,
        ge=0,
        description="upper limit of a sent batch's items; larger merged batches are split. 0 = no limit",
    )
    timeout: Seconds = Field(
        default=0.2,
        ge=0,
        description="longest wait before a non-full batch is sent; 0 sends every request at once",
    )

    @model_validator(mode="after")
    def _max_not_below_size(self) -> BatchProcessorConfig:
        if 0 < self.send_batch_max_size < self.send_batch_size:
            raise ValueError("send_batch_max_size must be 0 or at least send_batch_size")
        return self
