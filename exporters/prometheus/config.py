"""Configuration of the ``prometheus`` exporter."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from otel_receiver.component import ExporterConfig

DEFAULT_ENDPOINT = "127.0.0.1:9464"


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port`` (IPv6 hosts in brackets) -> (host, port)."""
    host, sep, port_text = endpoint.rpartition(":")
    if not sep or not host:
        raise ValueError(f"endpoint must be host:port, got {endpoint!r}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"endpoint port must be 0..65535, got {port_text!r}")
    return host.strip("[]"), int(port_text)


class PrometheusExporterConfig(ExporterConfig):
    endpoint: str = Field(
        default=DEFAULT_ENDPOINT,
        description="host:port of the scrape server; /metrics is served there (port 0 = pick a free one)",
    )
    span_metrics: bool = Field(
        default=True,
        description="derive the GenAI metrics (tokens, duration, cost, anomalies, PII redactions) from spans",
    )
    count_internal_agent_usage: bool = Field(
        default=False,
        description="count token usage on INTERNAL invoke_agent/create_agent/execute_tool spans "
        "(off: it is a roll-up of child model spans, as the genai_cost processor assumes)",
    )
    self_metrics: bool = Field(
        default=True,
        description="also expose the receiver's own otel_receiver_* metrics and Python process metrics",
    )
    max_series_per_metric: int = Field(
        default=2000,
        ge=1,
        description="distinct label sets kept per metric; further ones are folded into one series "
        "whose labels read 'other', and counted in otel_receiver_prometheus_overflow_items_total",
    )
    metric_expiration: float = Field(
        default=300.0,
        ge=0,
        description="seconds after which an idle translated OTLP series is dropped (0 = never)",
    )
    span_metrics_expiration: float = Field(
        default=0.0,
        ge=0,
        description="seconds after which an idle span-derived series is dropped (0 = never)",
    )
    tenant_label: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="tenant_id label on span-derived metrics: 'auto' when the span has audit.tenant.id "
        "or the request was authenticated, 'always' (value 'unknown' when absent), or 'never'",
    )
    namespace: str = Field(default="", description="prefix for translated OTLP metric names")
    add_metric_suffixes: bool = Field(
        default=True, description="append unit and _total suffixes to translated OTLP metric names"
    )
    resource_to_telemetry_conversion: bool = Field(
        default=False,
        description="copy every resource attribute onto translated series as a label (besides target_info)",
    )
    const_labels: dict[str, str] = Field(
        default_factory=dict, description="labels added to every exported (non-self) series"
    )
    exemplars: bool = Field(
        default=True, description="attach trace-id exemplars to histogram buckets in OpenMetrics scrapes"
    )
    exponential_histogram_max_buckets: int = Field(
        default=160,
        ge=2,
        le=10_000,
        description="exponential histograms are exposed as classic buckets, downscaled to at most this many",
    )

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        split_endpoint(value)
        return value

    @field_validator("const_labels")
    @classmethod
    def _check_const_labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not key or not (key[0].isalpha() or key[0] == "_") or not key.replace("_", "a").isalnum():
                raise ValueError(f"const label name {key!r} is not a valid Prometheus label name")
        return value
