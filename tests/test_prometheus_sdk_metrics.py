"""Real OpenTelemetry SDK metrics (OTLP/HTTP exporter) -> receiver -> prometheus exporter."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterable
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from test_prometheus_helpers import samples_of, value

import semconv


@pytest.mark.parametrize("temporality", [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA])
def test_sdk_metrics_are_translated(receiver_factory: Any, temporality: AggregationTemporality) -> None:
    receiver = receiver_factory(
        """
receivers: {otlp: {protocols: {http: {endpoint: "127.0.0.1:0"}}}}
exporters:
  prometheus: {endpoint: "127.0.0.1:0"}
service:
  pipelines:
    metrics: {receivers: [otlp], exporters: [prometheus]}
"""
    )
    preferred = dict.fromkeys((Counter, Histogram, UpDownCounter), temporality)
    exporter = OTLPMetricExporter(
        endpoint=receiver.http_url + "/v1/metrics",
        preferred_temporality=preferred,  # type: ignore[arg-type]
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    resource = Resource.create(
        {
            semconv.SERVICE_NAME: "sdk-app",
            semconv.SERVICE_NAMESPACE: "shop",
            semconv.SERVICE_INSTANCE_ID: "i-1",
        }
    )
    provider = MeterProvider(
        metric_readers=[reader],
        resource=resource,
        views=[View(instrument_name="llm.latency", aggregation=ExponentialBucketHistogramAggregation())],
    )
    meter = provider.get_meter("sdk.test", "2.0")
    requests = meter.create_counter("http.server.requests", unit="{request}", description="Requests served")
    duration = meter.create_histogram("http.server.request.duration", unit="s")
    latency = meter.create_histogram("llm.latency", unit="ms")
    inflight = meter.create_up_down_counter("jobs.inflight", unit="{job}")

    def memory(options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(1024.0, {"state": "used"})

    meter.create_observable_gauge("process.memory.usage", [memory], unit="By")
    try:
        for _ in range(2):  # two exports: the second is a delta on top of the first
            requests.add(3, {"http.route": "/chat"})
            duration.record(0.3, {"http.route": "/chat"})
            latency.record(12.0)
            latency.record(250.0)
            inflight.add(2)
            inflight.add(-1)
            assert reader.force_flush(10_000)
        url = receiver.service.exporters["prometheus"].url
        deadline = time.monotonic() + 20
        while True:
            with urllib.request.urlopen(url, timeout=10) as resp:
                samples, types = samples_of(resp.read().decode())
            if "process_memory_usage_bytes" in types or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        provider.shutdown()
    target = {"job": "shop/sdk-app", "instance": "i-1"}
    ident = {**target, "otel_scope_name": "sdk.test", "otel_scope_version": "2.0"}
    assert types["http_server_requests"] == "counter"
    assert value(samples, "http_server_requests_total", **ident, http_route="/chat") == 6
    assert types["http_server_request_duration_seconds"] == "histogram"
    assert value(samples, "http_server_request_duration_seconds_count", **ident, http_route="/chat") == 2
    assert value(samples, "http_server_request_duration_seconds_sum", **ident, http_route="/chat") == (
        pytest.approx(0.6)
    )
    assert types["llm_latency_milliseconds"] == "histogram"
    assert value(samples, "llm_latency_milliseconds_count", **ident) == 4
    buckets = sorted(
        (float(dict(k[1])["le"]), v) for k, v in samples.items() if k[0] == "llm_latency_milliseconds_bucket"
    )
    below_100 = max(v for le, v in buckets if le < 100)
    assert below_100 == 2  # the two 12 ms observations, whatever scale the SDK chose
    assert types["jobs_inflight"] == "gauge"
    assert value(samples, "jobs_inflight", **ident) == 2
    assert value(samples, "process_memory_usage_bytes", **ident, state="used") == 1024
    sdk = {"telemetry_sdk_language": "python", "telemetry_sdk_name": "opentelemetry"}
    sdk["telemetry_sdk_version"] = str(resource.attributes["telemetry.sdk.version"])
    assert value(samples, "target_info", **target, **sdk) == 1
