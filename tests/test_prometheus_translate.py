"""OTLP metrics -> Prometheus: names, units, every type and temporality, resources, staleness."""

from __future__ import annotations

import pytest
from opentelemetry.proto.metrics.v1 import metrics_pb2
from test_prometheus_helpers import (
    OPENMETRICS_ACCEPT,
    Samples,
    SpanSpec,
    export,
    make_exporter,
    metrics_request,
    number_metric,
    samples_of,
    scrape,
    trace_request,
    value,
)

import semconv
from exporters.prometheus import PrometheusExporter
from exporters.prometheus.naming import label_name, metric_name

DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
T0 = 1_700_000_000_000_000_000
SEC = 1_000_000_000
SCOPE = {"job": "svc", "otel_scope_name": "test.scope", "otel_scope_version": "1.0"}


@pytest.mark.parametrize(
    ("name", "unit", "kind", "expected"),
    [
        ("http.server.request.duration", "s", "histogram", "http_server_request_duration_seconds"),
        ("system.memory.usage", "By", "gauge", "system_memory_usage_bytes"),
        ("http.server.requests", "{request}", "counter", "http_server_requests_total"),
        ("requests.total", "1", "counter", "requests_total"),
        ("cpu.utilization", "1", "gauge", "cpu_utilization_ratio"),
        ("queue.depth", "1", "updowncounter", "queue_depth"),
        ("network.io", "By/s", "gauge", "network_io_bytes_per_second"),
        ("ops.rate", "{op}/s", "gauge", "ops_rate_per_second"),
        ("latency_seconds", "s", "histogram", "latency_seconds"),
        ("2xx.responses", "", "counter", "_2xx_responses_total"),
        ("my-metric", "ms", "gauge", "my_metric_milliseconds"),
        ("disk.io", "KiBy", "counter", "disk_io_kibibytes_total"),
        ("temp", "Cel", "gauge", "temp_celsius"),
        ("gen_ai.client.token.usage", "{token}", "histogram", "gen_ai_client_token_usage"),
        ("gen_ai.client.operation.duration", "s", "histogram", "gen_ai_client_operation_duration_seconds"),
        ("spend", "USD", "counter", "spend_USD_total"),
    ],
)
def test_metric_names_follow_collector_rules(name: str, unit: str, kind: str, expected: str) -> None:
    family, _ = metric_name(name, unit, counter=kind == "counter", gauge=kind == "gauge")
    exposed = family + "_total" if kind == "counter" else family
    assert exposed == expected


def test_metric_name_namespace_and_no_suffixes() -> None:
    assert metric_name("x.y", "s", namespace="app")[0] == "app_x_y_seconds"
    assert metric_name("http.duration", "s", add_suffixes=False)[0] == "http_duration"
    assert metric_name("http.duration", "s")[1] == "seconds"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("http.request.method", "http_request_method"),
        ("2fa.enabled", "key_2fa_enabled"),
        ("_private", "key_private"),
        ("__reserved", "__reserved"),
        ("k8s/pod-name", "k8s_pod_name"),
    ],
)
def test_label_names(key: str, expected: str) -> None:
    assert label_name(key) == expected


SELF_PREFIXES = ("process_", "python_", "otel_receiver_")


def _both(exporter: PrometheusExporter) -> tuple[Samples, dict[str, str]]:
    """Samples of the 0.0.4 text scrape, after checking the OpenMetrics scrape has the same
    exported series; types of both (OpenMetrics ones prefixed "om:")."""
    text = samples_of(scrape(exporter)[0])
    om = samples_of(scrape(exporter, OPENMETRICS_ACCEPT)[0], openmetrics=True)
    exported_text = {k: v for k, v in text[0].items() if not k[0].startswith(SELF_PREFIXES)}
    exported_om = {k: v for k, v in om[0].items() if not k[0].startswith(SELF_PREFIXES)}
    assert exported_text == exported_om
    return text[0], text[1] | {f"om:{k}": v for k, v in om[1].items()}


def test_gauge_int_and_double_with_dotted_attributes() -> None:
    exporter, _ = make_exporter()
    m = number_metric(
        "system.memory.usage",
        "gauge",
        [({"system.memory.state": "used"}, 1024, T0), ({"system.memory.state": "free"}, 512.5, T0)],
        unit="By",
        description="Memory in use",
    )
    export(exporter, metrics_request([m]))
    samples, types = _both(exporter)
    assert types["system_memory_usage_bytes"] == "gauge"
    assert types["om:system_memory_usage_bytes"] == "gauge"
    assert value(samples, "system_memory_usage_bytes", **SCOPE, system_memory_state="used") == 1024
    assert value(samples, "system_memory_usage_bytes", **SCOPE, system_memory_state="free") == 512.5
    text = scrape(exporter, OPENMETRICS_ACCEPT)[0]
    assert "# UNIT system_memory_usage_bytes bytes" in text
    assert "# HELP system_memory_usage_bytes Memory in use" in text


def test_monotonic_cumulative_sum_is_a_counter_and_ignores_older_points() -> None:
    exporter, telemetry = make_exporter()
    name = "http.server.requests"
    export(
        exporter, metrics_request([number_metric(name, "sum", [({"code": 200}, 10, T0)], unit="{request}")])
    )
    export(exporter, metrics_request([number_metric(name, "sum", [({"code": 200}, 25, T0 + SEC)])]))
    export(
        exporter, metrics_request([number_metric(name, "sum", [({"code": 200}, 7, T0)])])
    )  # late duplicate
    samples, types = _both(exporter)
    assert types["http_server_requests"] == "counter"
    assert types["om:http_server_requests"] == "counter"
    assert value(samples, "http_server_requests_total", **SCOPE, code="200") == 25
    dropped = {"exporter": "prometheus", "reason": "out_of_order"}
    assert telemetry.value("otel_receiver_prometheus_dropped_points_total", dropped) == 1


def test_monotonic_delta_sum_is_accumulated() -> None:
    exporter, _ = make_exporter()
    for i, v in enumerate([3, 4, 5.5]):
        m = number_metric("llm.calls", "sum", [({"model": "m"}, v, T0 + i * SEC)], temporality=DELTA)
        export(exporter, metrics_request([m]))
    samples, types = _both(exporter)
    assert types["llm_calls"] == "counter"
    assert value(samples, "llm_calls_total", **SCOPE, model="m") == 12.5


@pytest.mark.parametrize(("temporality", "expected"), [(CUMULATIVE, -2), (DELTA, 5 - 2)])
def test_non_monotonic_sum_is_a_gauge(temporality: int, expected: float) -> None:
    exporter, _ = make_exporter()
    for i, v in enumerate([5, -2]):
        m = number_metric(
            "queue.depth",
            "sum",
            [({}, v, T0 + i * SEC)],
            unit="{item}",
            monotonic=False,
            temporality=temporality,
        )
        export(exporter, metrics_request([m]))
    samples, types = _both(exporter)
    assert types["queue_depth"] == "gauge"
    assert value(samples, "queue_depth", **SCOPE) == expected


def _histogram(
    bounds: list[float], counts: list[int], total: float, t: int, temporality: int, exemplar: bool = False
) -> metrics_pb2.Metric:
    m = metrics_pb2.Metric(name="http.server.request.duration", unit="s", description="Request time")
    m.histogram.aggregation_temporality = temporality  # type: ignore[assignment]
    p = m.histogram.data_points.add()
    p.explicit_bounds.extend(bounds)
    p.bucket_counts.extend(counts)
    p.count = sum(counts)
    p.sum = total
    p.time_unix_nano = t
    kv = p.attributes.add()
    kv.key, kv.value.string_value = "http.route", "/chat"
    if exemplar:
        ex = p.exemplars.add()
        ex.as_double = 0.3
        ex.trace_id = bytes(range(16))
        ex.span_id = bytes(range(8))
        ex.time_unix_nano = t
    return m


def test_cumulative_histogram_with_exemplar() -> None:
    exporter, _ = make_exporter()
    export(exporter, metrics_request([_histogram([0.1, 0.5, 1], [1, 2, 0, 1], 2.4, T0, CUMULATIVE, True)]))
    samples, types = _both(exporter)
    assert types["http_server_request_duration_seconds"] == "histogram"
    name = "http_server_request_duration_seconds"
    labels = {**SCOPE, "http_route": "/chat"}
    assert [value(samples, name + "_bucket", **labels, le=le) for le in ("0.1", "0.5", "1.0", "+Inf")] == [
        1,
        3,
        3,
        4,
    ]
    assert value(samples, name + "_count", **labels) == 4
    assert value(samples, name + "_sum", **labels) == pytest.approx(2.4)
    text = scrape(exporter, OPENMETRICS_ACCEPT)[0]
    line = next(ln for ln in text.splitlines() if 'le="0.5"' in ln)
    assert f'trace_id="{bytes(range(16)).hex()}"' in line
    assert "# UNIT http_server_request_duration_seconds seconds" in text


def test_delta_histogram_is_accumulated_and_resets_when_bounds_change() -> None:
    exporter, _ = make_exporter()
    name = "http_server_request_duration_seconds"
    labels = {**SCOPE, "http_route": "/chat"}
    export(exporter, metrics_request([_histogram([0.1, 1], [1, 1, 0], 0.6, T0, DELTA)]))
    export(exporter, metrics_request([_histogram([0.1, 1], [0, 2, 1], 3.0, T0 + SEC, DELTA)]))
    samples, _ = _both(exporter)
    assert value(samples, name + "_bucket", **labels, le="0.1") == 1
    assert value(samples, name + "_bucket", **labels, le="1.0") == 4
    assert value(samples, name + "_count", **labels) == 5
    assert value(samples, name + "_sum", **labels) == pytest.approx(3.6)
    export(exporter, metrics_request([_histogram([5.0], [2, 0], 1.0, T0 + 2 * SEC, DELTA)]))
    samples, _ = _both(exporter)
    assert value(samples, name + "_bucket", **labels, le="5.0") == 2
    assert not [k for k in samples if k[0] == name + "_bucket" and ("le", "0.1") in k[1]]


def _exp_histogram(
    scale: int, positive: tuple[int, list[int]], t: int, temporality: int, zero: int = 0, negative=None
) -> metrics_pb2.Metric:  # type: ignore[no-untyped-def]
    m = metrics_pb2.Metric(name="llm.latency", unit="ms")
    m.exponential_histogram.aggregation_temporality = temporality  # type: ignore[assignment]
    p = m.exponential_histogram.data_points.add()
    p.scale = scale
    p.positive.offset, counts = positive
    p.positive.bucket_counts.extend(counts)
    p.zero_count = zero
    n = sum(counts) + zero
    if negative:
        p.negative.offset = negative[0]
        p.negative.bucket_counts.extend(negative[1])
        n += sum(negative[1])
    p.count = n
    p.sum = 42.0
    p.time_unix_nano = t
    return m


def test_exponential_histogram_as_classic_buckets() -> None:
    exporter, _ = make_exporter()
    # scale 0: bucket i holds (2**i, 2**(i+1)]; offset 0 -> (1,2], (2,4], (4,8]; negative
    # offset 1 -> [-4, -2); and one zero
    m = _exp_histogram(0, (0, [1, 2, 3]), T0, CUMULATIVE, zero=1, negative=(1, [2]))
    export(exporter, metrics_request([m]))
    samples, types = _both(exporter)
    name = "llm_latency_milliseconds"
    assert types[name] == "histogram"
    buckets = {dict(k[1])["le"]: v for k, v in samples.items() if k[0] == name + "_bucket"}
    assert buckets == {"-2.0": 2, "0.0": 3, "2.0": 4, "4.0": 6, "8.0": 9, "+Inf": 9}
    # OpenMetrics allows neither _sum nor _count next to negative buckets
    assert not [k for k in samples if k[0] in (name + "_sum", name + "_count")]


def test_delta_exponential_histograms_at_different_scales_merge() -> None:
    exporter, _ = make_exporter()
    # scale 1: base sqrt(2); indexes 0,1 -> (1, 1.41], (1.41, 2]; at scale 0 both are (1, 2]
    export(exporter, metrics_request([_exp_histogram(1, (0, [1, 1]), T0, DELTA)]))
    export(exporter, metrics_request([_exp_histogram(0, (0, [5, 1]), T0 + SEC, DELTA)]))
    samples, _ = _both(exporter)
    name = "llm_latency_milliseconds"
    buckets = {dict(k[1])["le"]: v for k, v in samples.items() if k[0] == name + "_bucket"}
    assert buckets == {"2.0": 7, "4.0": 8, "+Inf": 8}
    assert value(samples, name + "_sum", **SCOPE) == 84.0


def test_exponential_histogram_is_downscaled_to_the_bucket_limit() -> None:
    exporter, _ = make_exporter(exponential_histogram_max_buckets=10)
    export(exporter, metrics_request([_exp_histogram(3, (0, [1] * 40), T0, CUMULATIVE)]))
    samples, _ = _both(exporter)
    buckets = [k for k in samples if k[0] == "llm_latency_milliseconds_bucket"]
    assert len(buckets) <= 11
    assert value(samples, "llm_latency_milliseconds_bucket", **SCOPE, le="+Inf") == 40
    # 40 buckets at scale 3 span (1, 2**5]; the top bound survives downscaling
    assert value(samples, "llm_latency_milliseconds_bucket", **SCOPE, le="32.0") == 40


def test_summary() -> None:
    exporter, _ = make_exporter()
    m = metrics_pb2.Metric(name="rpc.duration", unit="ms")
    p = m.summary.data_points.add()
    p.count, p.sum, p.time_unix_nano = 10, 123.0, T0
    for q, v in ((0.5, 10.0), (0.99, 40.0)):
        qv = p.quantile_values.add()
        qv.quantile, qv.value = q, v
    export(exporter, metrics_request([m]))
    samples, types = _both(exporter)
    assert types["rpc_duration_milliseconds"] == "summary"
    assert value(samples, "rpc_duration_milliseconds", **SCOPE, quantile="0.99") == 40.0
    assert value(samples, "rpc_duration_milliseconds_count", **SCOPE) == 10


def test_resource_to_target_info_job_and_instance() -> None:
    exporter, _ = make_exporter()
    resource = {
        semconv.SERVICE_NAME: "checkout",
        semconv.SERVICE_NAMESPACE: "shop",
        semconv.SERVICE_INSTANCE_ID: "pod-1",
        "deployment.environment.name": "prod",
        "host.cpu.count": 8,
    }
    export(
        exporter, metrics_request([number_metric("up.time", "gauge", [({}, 1.0, T0)], unit="s")], resource)
    )
    samples, types = _both(exporter)
    ident = {"job": "shop/checkout", "instance": "pod-1"}
    assert types["om:target"] == "info"
    assert types["target_info"] == "gauge"  # 0.0.4 text has no info type
    assert value(samples, "target_info", **ident, deployment_environment_name="prod", host_cpu_count="8") == 1
    assert (
        value(samples, "up_time_seconds", **ident, otel_scope_name="test.scope", otel_scope_version="1.0")
        == 1
    )


def test_resource_to_telemetry_conversion() -> None:
    exporter, _ = make_exporter(resource_to_telemetry_conversion=True)
    resource = {semconv.SERVICE_NAME: "svc", "k8s.pod.name": "p-1"}
    export(exporter, metrics_request([number_metric("g", "gauge", [({}, 1.0, T0)])], resource))
    samples, _ = _both(exporter)
    assert value(samples, "g", **SCOPE, k8s_pod_name="p-1", service_name="svc") == 1


def test_colliding_label_names_are_joined() -> None:
    exporter, _ = make_exporter()
    m = number_metric("g", "gauge", [({"a.b": "x", "a_b": "y", "flag": True, "tags": ["p", "q"]}, 1.0, T0)])
    export(exporter, metrics_request([m]))
    samples, _ = _both(exporter)
    assert value(samples, "g", **SCOPE, a_b="x;y", flag="true", tags='["p","q"]') == 1


def test_no_recorded_value_removes_the_series() -> None:
    exporter, _ = make_exporter()
    export(
        exporter,
        metrics_request([number_metric("g", "gauge", [({"k": "a"}, 1.0, T0), ({"k": "b"}, 2.0, T0)])]),
    )
    gone = number_metric("g", "gauge", [({"k": "a"}, 0.0, T0 + SEC)])
    gone.gauge.data_points[0].flags = metrics_pb2.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
    export(exporter, metrics_request([gone]))
    samples, _ = _both(exporter)
    assert [dict(k[1])["k"] for k in samples if k[0] == "g"] == ["b"]


def test_stale_series_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    import exporters.prometheus.exporter as exporter_module
    import exporters.prometheus.translate as translate_module

    clock = [500.0]
    monkeypatch.setattr(translate_module.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(exporter_module.time, "monotonic", lambda: clock[0])
    exporter, telemetry = make_exporter(metric_expiration=10)
    export(exporter, metrics_request([number_metric("g", "gauge", [({"k": "old"}, 1.0, T0)])]))
    clock[0] += 8
    export(exporter, metrics_request([number_metric("g", "gauge", [({"k": "new"}, 1.0, T0)])]))
    clock[0] += 5
    samples, _ = _both(exporter)
    assert [dict(k[1])["k"] for k in samples if k[0] == "g"] == ["new"]
    clock[0] += 20
    samples, types = _both(exporter)
    assert "g" not in types and "target_info" not in types
    assert telemetry.value("otel_receiver_prometheus_expired_series_total", {"exporter": "prometheus"}) == 2


def test_cardinality_limit_on_translated_metrics() -> None:
    exporter, telemetry = make_exporter(max_series_per_metric=5)
    points = [({"user.id": f"u{i}"}, 1, T0) for i in range(12)]
    export(exporter, metrics_request([number_metric("logins", "sum", points, temporality=DELTA)]))
    samples, _ = _both(exporter)
    series = [k for k in samples if k[0] == "logins_total"]
    assert len(series) == 6
    assert value(samples, "logins_total", **dict.fromkeys([*SCOPE, "user_id"], "other")) == 7
    overflow = {"exporter": "prometheus", "metric": "logins"}
    assert telemetry.value("otel_receiver_prometheus_overflow_items_total", overflow) == 7


def test_type_conflict_keeps_the_first_and_counts_the_rest() -> None:
    exporter, telemetry = make_exporter()
    first = number_metric("jobs", "gauge", [({}, 3.0, T0)])
    second = number_metric("jobs", "sum", [({}, 1.0, T0)], monotonic=False)  # also a gauge: fine
    third = _histogram([1.0], [1, 0], 0.5, T0, CUMULATIVE)
    third.name, third.unit = "jobs", ""
    export(exporter, metrics_request([first, second, third]))
    _, types = _both(exporter)
    assert types["jobs"] == "gauge"
    dropped = {"exporter": "prometheus", "reason": "type_conflict"}
    assert telemetry.value("otel_receiver_prometheus_dropped_points_total", dropped) == 1


def test_sdk_genai_metrics_share_the_family_with_span_derived_ones() -> None:
    exporter, _ = make_exporter()
    export(exporter, trace_request([SpanSpec(input_tokens=10)]))
    m = _histogram([1, 4, 16], [0, 0, 1, 0], 10.0, T0, CUMULATIVE)
    m.name, m.unit = "gen_ai.client.token.usage", "{token}"
    export(exporter, metrics_request([m]))
    samples, types = _both(exporter)  # the parsers reject a family exposed twice
    counts = {frozenset(k[1]) for k in samples if k[0] == "gen_ai_client_token_usage_count"}
    assert len(counts) == 3  # input + output from spans, one translated series
    assert types["gen_ai_client_token_usage"] == "histogram"


def test_invalid_points_are_dropped_and_counted() -> None:
    exporter, telemetry = make_exporter()
    bad_hist = _histogram([1.0], [1, 1], 1.0, T0, CUMULATIVE)
    bad_hist.histogram.data_points[0].count = 5  # buckets say 2
    bad_exp = _exp_histogram(0, (0, [1, 2]), T0, CUMULATIVE)
    bad_exp.exponential_histogram.data_points[0].count = 9  # buckets say 3
    negative = number_metric("done", "sum", [({}, -3, T0)], temporality=DELTA)
    export(exporter, metrics_request([bad_hist, bad_exp, negative]))
    _, types = _both(exporter)
    assert not {"http_server_request_duration_seconds", "llm_latency_milliseconds", "done"} & set(types)
    dropped = {"exporter": "prometheus", "reason": "invalid"}
    assert telemetry.value("otel_receiver_prometheus_dropped_points_total", dropped) == 3
