"""Configuration of the ``anomaly`` processor."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from otel_receiver.component import ComponentConfig
from processors.anomaly.detector import DEFAULT_PARAMS, DetectorParams
from semconv import attributes as a

# Pseudo-dimension: the span's name rather than an attribute.
SPAN_NAME = "span.name"

DEFAULT_DIMENSIONS = (
    a.SERVICE_NAME,
    a.GEN_AI_PROVIDER_NAME,
    a.GEN_AI_REQUEST_MODEL,
    a.GEN_AI_OPERATION_NAME,
)
DEFAULT_NON_GENAI_DIMENSIONS = (a.SERVICE_NAME, SPAN_NAME)

_D = DEFAULT_PARAMS


class DetectorConfig(ComponentConfig):
    """Tuning of the detector core; defaults are the configuration measured on NAB."""

    level_alpha: float = Field(default=_D.level_alpha, gt=0, le=1, description="EWMA weight of the level")
    scale_alpha: float = Field(
        default=_D.scale_alpha, gt=0, le=1, description="EWMA weight of the mean absolute error"
    )
    relative_floor: float = Field(
        default=_D.relative_floor, ge=0, description="error unit is at least this share of |level|"
    )
    short_alpha: float = Field(
        default=_D.short_alpha, gt=0, le=1, description="EWMA weight of the short-term surprise average"
    )
    long_alpha: float = Field(
        default=_D.long_alpha, gt=0, le=1, description="EWMA weight of the long-run surprise statistics"
    )
    histogram_bins: int = Field(default=_D.histogram_bins, ge=3, le=1000, description="value histogram bins")
    histogram_alpha: float = Field(
        default=_D.histogram_alpha, gt=0, le=1, description="forgetting rate of the value histogram"
    )
    warmup: int = Field(default=_D.warmup, ge=1, description="points per series learned before scoring")
    alarm_z: float = Field(default=_D.alarm_z, gt=0, description="z that opens a refractory period")
    refractory: int = Field(default=_D.refractory, ge=0, description="points kept silent after an alarm")
    score_k: float = Field(default=_D.score_k, gt=0, description="score = z / (z + score_k)")
    time_unit: float = Field(
        default=_D.time_unit,
        ge=0,
        description="seconds between points for full evidence; closer points count pro rata (0 = per point)",
    )

    def params(self) -> DetectorParams:
        return DetectorParams(**self.model_dump())


class SignalsConfig(ComponentConfig):
    """Which detector kinds run; each one can be switched off."""

    latency: bool = Field(default=True, description="span duration")
    tokens: bool = Field(default=True, description="input + output tokens per call")
    cost: bool = Field(default=True, description="gen_ai.usage.cost per call (from genai_cost)")
    error_rate: bool = Field(default=True, description="share of error spans over error_rate_window")


class EpisodesConfig(ComponentConfig):
    """One log record per anomaly episode, fed into the logs pipelines."""

    enabled: bool = Field(default=True, description="emit episode log records through the host")
    cooldown: float = Field(
        default=300.0,
        gt=0,
        description="seconds of event time without a flag that close an episode (one record per incident)",
    )


class AnomalyConfig(ComponentConfig):
    dimensions: tuple[str, ...] = Field(
        default=DEFAULT_DIMENSIONS,
        min_length=1,
        description="attributes (span, then resource) that key a GenAI series; 'span.name' = the span name",
    )
    non_genai_dimensions: tuple[str, ...] = Field(
        default=DEFAULT_NON_GENAI_DIMENSIONS,
        description="key of series for spans without gen_ai.operation.name / gen_ai.provider.name; "
        "empty = ignore such spans",
    )
    signals: SignalsConfig = SignalsConfig()
    threshold: float = Field(
        default=0.6,
        gt=0,
        lt=1,
        description="detector score at which a span is flagged (0.6 = likelihood z of 7.5)",
    )
    error_rate_threshold: float = Field(
        default=0.35,
        gt=0,
        lt=1,
        description="score at which the error count is flagged (0.35 = Poisson tail of a normal z 2.7)",
    )
    error_rate_window: float = Field(
        default=60.0, gt=0, description="seconds of event time errors are counted over (exponential window)"
    )
    error_rate_baseline: float = Field(
        default=3600.0, gt=0, description="seconds of event time the long-run error share is learnt over"
    )
    error_rate_min_errors: float = Field(
        default=3.0, ge=1, description="errors in the window below which nothing is flagged"
    )
    max_series: int = Field(default=10_000, ge=1, description="series kept; least recently used evicted")
    state_path: str | None = Field(
        default=None, description="JSON file of baselines, restored at start (relative to the config file)"
    )
    snapshot_interval: float = Field(default=60.0, gt=0, description="seconds between baseline snapshots")
    episodes: EpisodesConfig = EpisodesConfig()
    detector: DetectorConfig = DetectorConfig()

    @field_validator("dimensions", "non_genai_dimensions", mode="before")
    @classmethod
    def _unique(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and len(set(value)) != len(value):
            raise ValueError("dimensions must be unique")
        return value

    @model_validator(mode="after")
    def _windows(self) -> AnomalyConfig:
        if self.error_rate_baseline <= self.error_rate_window:
            raise ValueError("error_rate_baseline must be longer than error_rate_window")
        return self
