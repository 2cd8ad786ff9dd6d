"""Builders and parsers shared by the Prometheus exporter tests (no tests here)."""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

import semconv
from exporters.prometheus import PrometheusExporter, factory
from otel_receiver.attributes import set_double, set_int, set_str, set_str_array
from otel_receiver.component import ComponentSettings, RequestContext
from otel_receiver.telemetry import SelfTelemetry

OPENMETRICS_ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


@dataclass
class SpanSpec:
    service: str = "chat-api"
    operation: str | None = "chat"
    provider: str | None = "openai"
    model: str | None = "gpt-4o"
    input_tokens: int | None = 100
    output_tokens: int | None = 20
    cost: float | None = None
    duration_s: float = 0.5
    error_type: str | None = None
    status_error: bool = False
    tenant: str | None = None
    anomaly_kinds: Sequence[str] = ()
    pii_types: Sequence[str] = ()
    pii_count: int | None = None
    kind: int = Span.SPAN_KIND_CLIENT
    trace_id: bytes = field(default_factory=lambda: os.urandom(16))
    span_id: bytes = field(default_factory=lambda: os.urandom(8))


def trace_request(
    specs: Iterable[SpanSpec], start_ns: int = 1_700_000_000_000_000_000
) -> ExportTraceServiceRequest:
    """One ResourceSpans per service, in first-seen order."""
    req = ExportTraceServiceRequest()
    by_service: dict[str, Any] = {}
    for spec in specs:
        scope_spans = by_service.get(spec.service)
        if scope_spans is None:
            rs = req.resource_spans.add()
            set_str(rs.resource.attributes, semconv.SERVICE_NAME, spec.service)
            scope_spans = rs.scope_spans.add()
            scope_spans.scope.name = "test"
            by_service[spec.service] = scope_spans
        span = scope_spans.spans.add()
        span.trace_id, span.span_id = spec.trace_id, spec.span_id
        span.name = f"{spec.operation} {spec.model}"
        span.kind = spec.kind  # type: ignore[assignment]
        span.start_time_unix_nano = start_ns
        span.end_time_unix_nano = start_ns + round(spec.duration_s * 1e9)
        a = span.attributes
        set_str(a, "http.request.method", "POST")  # noise a real span carries
        for key, value in (
            (semconv.GEN_AI_OPERATION_NAME, spec.operation),
            (semconv.GEN_AI_PROVIDER_NAME, spec.provider),
            (semconv.GEN_AI_REQUEST_MODEL, spec.model),
            (semconv.ERROR_TYPE, spec.error_type),
            (semconv.AUDIT_TENANT_ID, spec.tenant),
        ):
            if value is not None:
                set_str(a, key, value)
        if spec.input_tokens is not None:
            set_int(a, semconv.GEN_AI_USAGE_INPUT_TOKENS, spec.input_tokens)
        if spec.output_tokens is not None:
            set_int(a, semconv.GEN_AI_USAGE_OUTPUT_TOKENS, spec.output_tokens)
        if spec.cost is not None:
            set_double(a, semconv.GEN_AI_USAGE_COST, spec.cost)
        if spec.status_error:
            span.status.code = Status.STATUS_CODE_ERROR
        if spec.anomaly_kinds:
            a.add().key = semconv.ANOMALY_FLAGGED
            a[-1].value.bool_value = True
            set_str_array(a, semconv.ANOMALY_KINDS, spec.anomaly_kinds)
        if spec.pii_types:
            set_str_array(a, semconv.PII_REDACTED_TYPES, spec.pii_types)
            set_int(a, semconv.PII_REDACTED_COUNT, spec.pii_count or len(spec.pii_types))
    return req


def make_exporter(**config: Any) -> tuple[PrometheusExporter, SelfTelemetry]:
    config.setdefault("endpoint", "127.0.0.1:0")
    telemetry = SelfTelemetry()
    cfg = factory.config_model(**config)
    settings = ComponentSettings("prometheus", telemetry, logging.getLogger("test.prometheus"))
    exporter = factory.create(cfg, settings)
    assert isinstance(exporter, PrometheusExporter)
    return exporter, telemetry


def export(exporter: PrometheusExporter, batch: Any, context: RequestContext | None = None) -> None:
    asyncio.run(exporter.export(batch, context or RequestContext()))


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(exporter: PrometheusExporter, accept: str = "") -> tuple[str, str]:
    body, content_type, _ = exporter.render(accept, False)
    return body.decode(), content_type


def samples_of(text: str, openmetrics: bool = False) -> tuple[Samples, dict[str, str]]:
    """(value by (sample name, labels), family type by family name), via prometheus_client's
    parsers; the parse itself fails on malformed exposition."""
    parse = parse_openmetrics if openmetrics else parse_text
    out: Samples = {}
    types: dict[str, str] = {}
    for family in parse(text):
        types[family.name] = family.type
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out, types


def value(samples: Samples, name: str, **labels: str) -> float:
    """The one sample of ``name`` whose labels are exactly ``labels``."""
    key = (name, frozenset(labels.items()))
    if key not in samples:
        near = [k for k in samples if k[0] == name]
        raise AssertionError(f"no {name}{labels}; have {near[:5]}")
    return samples[key]


def total(samples: Samples, name: str, **match: str) -> float:
    return sum(v for (n, labels), v in samples.items() if n == name and set(match.items()) <= labels)


def number_metric(
    name: str,
    kind: str,
    points: Sequence[tuple[dict[str, Any], float, int]],
    *,
    unit: str = "",
    monotonic: bool = True,
    temporality: int = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE,
    description: str = "",
) -> metrics_pb2.Metric:
    """A gauge or sum with points (attributes, value, time_ns); ints stay as_int."""
    m = metrics_pb2.Metric(name=name, unit=unit, description=description)
    if kind == "gauge":
        container = m.gauge.data_points
    else:
        m.sum.is_monotonic = monotonic
        m.sum.aggregation_temporality = temporality  # type: ignore[assignment]
        container = m.sum.data_points
    for attrs, v, t in points:
        p = container.add()
        for k, av in attrs.items():
            _set_any(p.attributes, k, av)
        p.time_unix_nano = t
        if isinstance(v, int):
            p.as_int = v
        else:
            p.as_double = v
    return m


def _set_any(attributes: Any, key: str, v: Any) -> None:
    if isinstance(v, bool):
        kv = attributes.add()
        kv.key = key
        kv.value.bool_value = v
    elif isinstance(v, int):
        set_int(attributes, key, v)
    elif isinstance(v, float):
        set_double(attributes, key, v)
    elif isinstance(v, list):
        set_str_array(attributes, key, v)
    else:
        set_str(attributes, key, v)


def metrics_request(
    metrics: Sequence[metrics_pb2.Metric],
    resource: dict[str, Any] | None = None,
    scope: tuple[str, str] = ("test.scope", "1.0"),
) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    for k, v in (resource if resource is not None else {semconv.SERVICE_NAME: "svc"}).items():
        _set_any(rm.resource.attributes, k, v)
    sm = rm.scope_metrics.add()
    sm.scope.name, sm.scope.version = scope
    for m in metrics:
        sm.metrics.add().CopyFrom(m)
    return req


def le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))
