"""Configuration of the ``genai_normalize`` processor."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from otel_receiver.component import ComponentConfig
from processors.genai_cost.config import ExclusiveSource


class GenAINormalizeConfig(ComponentConfig):
    mode: Literal["rewrite", "keep_original"] = Field(
        default="rewrite",
        description="rewrite: replace old and vendor names by the current ones; "
        "keep_original: add the current names and keep the originals too",
    )
    exclusive_sources: list[ExclusiveSource] = Field(
        default_factory=list,
        description="emitters whose token counts exclude cache/reasoning subsets; their counts are "
        "made inclusive (OTel semantics) when renamed",
    )
