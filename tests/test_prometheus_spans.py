"""GenAI metrics the prometheus exporter derives from spans, via ``export()`` directly."""

from __future__ import annotations

import pytest
from test_prometheus_helpers import (
    OPENMETRICS_ACCEPT,
    SpanSpec,
    export,
    make_exporter,
    samples_of,
    scrape,
    total,
    trace_request,
    value,
)

from exporters.prometheus.spanmetrics import DURATION_BUCKETS, TOKEN_BUCKETS
from otel_receiver.component import RequestContext

BASE = {
    "service_name": "chat-api",
    "gen_ai_provider_name": "openai",
    "gen_ai_request_model": "gpt-4o",
    "gen_ai_operation_name": "chat",
}


def test_token_usage_histogram_uses_semconv_buckets_and_token_type() -> None:
    exporter, _ = make_exporter()
    export(
        exporter, trace_request([SpanSpec(input_tokens=100, output_tokens=20), SpanSpec(input_tokens=5000)])
    )
    samples, types = samples_of(scrape(exporter)[0])
    assert types["gen_ai_client_token_usage"] == "histogram"
    inp = {**BASE, "gen_ai_token_type": "input"}
    out = {**BASE, "gen_ai_token_type": "output"}
    assert value(samples, "gen_ai_client_token_usage_count", **inp) == 2
    assert value(samples, "gen_ai_client_token_usage_sum", **inp) == 5100
    assert value(samples, "gen_ai_client_token_usage_sum", **out) == 40
    # 100 falls in (64, 256], 5000 in (4096, 16384]
    assert value(samples, "gen_ai_client_token_usage_bucket", **inp, le="64.0") == 0
    assert value(samples, "gen_ai_client_token_usage_bucket", **inp, le="256.0") == 1
    assert value(samples, "gen_ai_client_token_usage_bucket", **inp, le="4096.0") == 1
    assert value(samples, "gen_ai_client_token_usage_bucket", **inp, le="16384.0") == 2
    assert value(samples, "gen_ai_client_token_usage_bucket", **inp, le="+Inf") == 2
    les = {dict(k[1])["le"] for k in samples if k[0] == "gen_ai_client_token_usage_bucket"}
    assert len(les) == len(TOKEN_BUCKETS) + 1


def test_bucket_bounds_are_inclusive_upper_bounds() -> None:
    exporter, _ = make_exporter()
    export(exporter, trace_request([SpanSpec(input_tokens=64, output_tokens=None, duration_s=0.08)]))
    samples, _ = samples_of(scrape(exporter)[0])
    inp = {**BASE, "gen_ai_token_type": "input"}
    assert value(samples, "gen_ai_client_token_usage_bucket", **inp, le="16.0") == 0
    assert value(samples, "gen_ai_client_token_usage_bucket", **inp, le="64.0") == 1
    assert value(samples, "gen_ai_client_operation_duration_seconds_bucket", **BASE, le="0.04") == 0
    assert value(samples, "gen_ai_client_operation_duration_seconds_bucket", **BASE, le="0.08") == 1


def test_operation_duration_with_error_type() -> None:
    exporter, _ = make_exporter()
    export(
        exporter,
        trace_request(
            [
                SpanSpec(duration_s=1.5),
                SpanSpec(duration_s=0.015, error_type="timeout"),
                SpanSpec(duration_s=100.0, status_error=True),
            ]
        ),
    )
    samples, types = samples_of(scrape(exporter)[0])
    assert types["gen_ai_client_operation_duration_seconds"] == "histogram"
    name = "gen_ai_client_operation_duration_seconds"
    assert value(samples, name + "_count", **BASE) == 1
    assert value(samples, name + "_sum", **BASE) == pytest.approx(1.5)
    assert value(samples, name + "_bucket", **BASE, le="1.28") == 0
    assert value(samples, name + "_bucket", **BASE, le="2.56") == 1
    assert value(samples, name + "_bucket", **BASE, error_type="timeout", le="0.02") == 1
    # A failed span without error.type gets the semconv fallback "_OTHER".
    assert value(samples, name + "_bucket", **BASE, error_type="_OTHER", le="81.92") == 0
    assert value(samples, name + "_bucket", **BASE, error_type="_OTHER", le="+Inf") == 1
    les = {dict(k[1])["le"] for k in samples if k[0] == name + "_bucket"}
    assert len(les) == len(DURATION_BUCKETS) + 1


def test_cost_counter_sums_gen_ai_usage_cost() -> None:
    exporter, _ = make_exporter()
    costs = [0.0125, 0.5, 0.000003, 1.25]
    export(exporter, trace_request([SpanSpec(cost=c) for c in costs[:2]]))
    export(exporter, trace_request([SpanSpec(cost=c, model="claude-sonnet-4") for c in costs[2:]]))
    samples, types = samples_of(scrape(exporter)[0])
    assert types["gen_ai_client_cost_usd"] == "counter"
    assert value(samples, "gen_ai_client_cost_usd_total", **BASE) == pytest.approx(0.5125)
    assert total(samples, "gen_ai_client_cost_usd_total") == pytest.approx(sum(costs))


def test_cost_total_is_exact_to_the_nano_dollar() -> None:
    # Summed as floats, 0.1 + 0.2 + ... drifts in the last digits and no longer equals the
    # Decimal total ClickHouse stores for the same calls.
    exporter, _ = make_exporter()
    costs = [0.1, 0.2, 0.000000001, 0.0060025] * 250
    export(exporter, trace_request([SpanSpec(cost=c) for c in costs]))
    samples, _ = samples_of(scrape(exporter)[0])
    assert value(samples, "gen_ai_client_cost_usd_total", **BASE) == 76.500625250
    assert sum(costs) != 76.500625250


def test_spans_without_genai_attributes_make_no_genai_series() -> None:
    exporter, _ = make_exporter()
    plain = SpanSpec(operation=None, provider=None, model=None, input_tokens=None, output_tokens=None)
    export(exporter, trace_request([plain]))
    samples, _ = samples_of(scrape(exporter)[0])
    assert not [k for k in samples if k[0].startswith("gen_ai_")]


def test_anomalies_by_kind_and_pii_redactions_by_type() -> None:
    exporter, _ = make_exporter()
    export(
        exporter,
        trace_request(
            [
                SpanSpec(anomaly_kinds=["latency", "cost"]),
                SpanSpec(anomaly_kinds=["latency"]),
                SpanSpec(pii_types=["EMAIL"], pii_count=3),
                # 5 redactions over two types: split 3 + 2, so the total is kept
                SpanSpec(pii_types=["PHONE", "CREDIT_CARD"], pii_count=5),
                SpanSpec(operation=None, provider=None, model=None, pii_types=["EMAIL"], pii_count=1),
            ]
        ),
    )
    samples, types = samples_of(scrape(exporter)[0])
    assert types["gen_ai_anomalies"] == "counter"
    assert value(samples, "gen_ai_anomalies_total", **BASE, kind="latency") == 2
    assert value(samples, "gen_ai_anomalies_total", **BASE, kind="cost") == 1
    assert types["pii_redactions"] == "counter"
    assert total(samples, "pii_redactions_total") == 3 + 5 + 1
    assert value(samples, "pii_redactions_total", **BASE, type="EMAIL") == 3
    assert value(samples, "pii_redactions_total", service_name="chat-api", type="EMAIL") == 1
    assert total(samples, "pii_redactions_total", type="PHONE") == 3
    assert total(samples, "pii_redactions_total", type="CREDIT_CARD") == 2


def test_tenant_label_from_audit_attribute_or_authenticated_context() -> None:
    exporter, _ = make_exporter()
    export(exporter, trace_request([SpanSpec(cost=1.0, tenant="acme")]))
    export(exporter, trace_request([SpanSpec(cost=2.0)]), RequestContext(tenant="globex"))
    export(exporter, trace_request([SpanSpec(cost=4.0)]))
    samples, _ = samples_of(scrape(exporter)[0])
    assert value(samples, "gen_ai_client_cost_usd_total", **BASE, tenant_id="acme") == 1.0
    assert value(samples, "gen_ai_client_cost_usd_total", **BASE, tenant_id="globex") == 2.0
    assert value(samples, "gen_ai_client_cost_usd_total", **BASE) == 4.0


@pytest.mark.parametrize(("mode", "expected"), [("never", None), ("always", "unknown")])
def test_tenant_label_modes(mode: str, expected: str | None) -> None:
    exporter, _ = make_exporter(tenant_label=mode)
    export(exporter, trace_request([SpanSpec(cost=1.0, tenant="acme" if mode == "never" else None)]))
    samples, _ = samples_of(scrape(exporter)[0])
    labels = dict(BASE, tenant_id=expected) if expected else BASE
    assert value(samples, "gen_ai_client_cost_usd_total", **labels) == 1.0


def test_cardinality_limit_folds_new_series_into_other_and_counts_them() -> None:
    exporter, telemetry = make_exporter(max_series_per_metric=3)
    specs = [
        SpanSpec(model=f"gpt-typo-{i}", cost=0.01, input_tokens=10, output_tokens=None) for i in range(10)
    ]
    export(exporter, trace_request(specs[:5]))
    export(exporter, trace_request(specs[5:]))
    # an already known label set keeps its own series once the limit is reached
    export(
        exporter,
        trace_request([SpanSpec(model="gpt-typo-0", cost=0.01, input_tokens=10, output_tokens=None)]),
    )
    samples, _ = samples_of(scrape(exporter)[0])
    cost_series = [k for k in samples if k[0] == "gen_ai_client_cost_usd_total"]
    assert len(cost_series) == 4  # 3 real ones and the overflow one
    other = {
        "service_name": "other",
        "gen_ai_provider_name": "other",
        "gen_ai_request_model": "other",
        "gen_ai_operation_name": "other",
    }
    assert value(samples, "gen_ai_client_cost_usd_total", **other) == pytest.approx(0.07)
    assert value(
        samples, "gen_ai_client_cost_usd_total", **dict(BASE, gen_ai_request_model="gpt-typo-0")
    ) == (pytest.approx(0.02))
    assert total(samples, "gen_ai_client_cost_usd_total") == pytest.approx(0.11)
    # the token type is bounded, so the overflow series keeps it
    assert value(samples, "gen_ai_client_token_usage_count", **other, gen_ai_token_type="input") == 7
    overflow = {"exporter": "prometheus", "metric": "gen_ai_client_cost_usd"}
    assert telemetry.value("otel_receiver_prometheus_overflow_items_total", overflow) == 7
    overflow["metric"] = "gen_ai_client_token_usage"
    assert telemetry.value("otel_receiver_prometheus_overflow_items_total", overflow) == 7
    # and the counter is exposed on the same endpoint
    assert value(samples, "otel_receiver_prometheus_overflow_items_total", **overflow) == 7


def test_overflow_counts_every_span_even_when_several_share_a_label_set() -> None:
    exporter, telemetry = make_exporter(max_series_per_metric=1)
    known = SpanSpec(model="gpt-4o", cost=0.01, input_tokens=10, output_tokens=None)
    export(exporter, trace_request([known]))
    same_typo = SpanSpec(model="gpt-4o-typo", cost=0.01, input_tokens=10, output_tokens=None)
    export(exporter, trace_request([same_typo] * 5))
    scrape(exporter)  # sums reach the series (and the limit) at a scrape, or within a second
    for metric in ("gen_ai_client_cost_usd", "gen_ai_client_token_usage"):
        labels = {"exporter": "prometheus", "metric": metric}
        assert telemetry.value("otel_receiver_prometheus_overflow_items_total", labels) == 5, metric


def test_openmetrics_exemplars_carry_trace_ids_on_histogram_buckets() -> None:
    exporter, _ = make_exporter()
    spec = SpanSpec(input_tokens=100, duration_s=0.5)
    export(exporter, trace_request([spec]))
    text, content_type = scrape(exporter, OPENMETRICS_ACCEPT)
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert text.rstrip().endswith("# EOF")
    exemplars = {}
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.exemplar is not None:
                exemplars[(s.name, s.labels.get("le"), s.labels.get("gen_ai_token_type"))] = s.exemplar
    ex = exemplars[("gen_ai_client_token_usage_bucket", "256.0", "input")]
    assert ex.labels == {"trace_id": spec.trace_id.hex(), "span_id": spec.span_id.hex()}
    assert ex.value == 100
    ex = exemplars[("gen_ai_client_operation_duration_seconds_bucket", "0.64", None)]
    assert ex.labels["trace_id"] == spec.trace_id.hex()
    assert ex.value == pytest.approx(0.5)
    # exemplars only where the value fell
    assert ("gen_ai_client_token_usage_bucket", "64.0", "input") not in exemplars
    # the 0.0.4 text format has no exemplars but the same series
    plain, plain_type = scrape(exporter)
    assert plain_type == "text/plain; version=0.0.4; charset=utf-8"
    assert "trace_id" not in plain


def test_both_formats_parse_with_self_and_process_metrics() -> None:
    exporter, telemetry = make_exporter()
    telemetry.received_items.labels("grpc", "traces").inc(3)
    export(exporter, trace_request([SpanSpec(cost=0.1, anomaly_kinds=["tokens"], pii_types=["EMAIL"])]))
    text_samples, text_types = samples_of(scrape(exporter)[0])
    om_samples, om_types = samples_of(scrape(exporter, OPENMETRICS_ACCEPT)[0], openmetrics=True)
    for types in (text_types, om_types):
        assert types["otel_receiver_received_items"] == "counter"
        assert "process_cpu_seconds" in types
        assert "python_info" in types or "python" in types
    assert value(text_samples, "otel_receiver_received_items_total", transport="grpc", signal="traces") == 3
    assert value(om_samples, "otel_receiver_received_items_total", transport="grpc", signal="traces") == 3
    span_keys = {k for k in text_samples if k[0].startswith(("gen_ai_", "pii_"))}
    om_span_keys = {k for k in om_samples if k[0].startswith(("gen_ai_", "pii_"))}
    assert span_keys == om_span_keys
    assert span_keys


def test_self_metrics_can_be_switched_off() -> None:
    exporter, telemetry = make_exporter(self_metrics=False)
    telemetry.received_items.labels("grpc", "traces").inc()
    export(exporter, trace_request([SpanSpec(cost=0.1)]))
    _, types = samples_of(scrape(exporter)[0])
    assert not [n for n in types if n.startswith(("otel_receiver_", "process_"))]
    assert "gen_ai_client_cost_usd" in types


def test_span_metrics_can_be_switched_off() -> None:
    exporter, _ = make_exporter(span_metrics=False)
    export(exporter, trace_request([SpanSpec(cost=0.1)]))
    _, types = samples_of(scrape(exporter)[0])
    assert not [n for n in types if n.startswith("gen_ai_")]


def test_const_labels_on_exported_series_only() -> None:
    exporter, _ = make_exporter(const_labels={"region": "eu"})
    export(exporter, trace_request([SpanSpec(cost=0.1)]))
    samples, _ = samples_of(scrape(exporter)[0])
    assert value(samples, "gen_ai_client_cost_usd_total", **BASE, region="eu") == pytest.approx(0.1)
    assert not [k for k in samples if k[0].startswith("otel_receiver_") and ("region", "eu") in k[1]]


def test_idle_span_series_expire_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    import exporters.prometheus.exporter as exporter_module
    import exporters.prometheus.spanmetrics as spanmetrics_module

    clock = [1000.0]
    monkeypatch.setattr(spanmetrics_module.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(exporter_module.time, "monotonic", lambda: clock[0])
    exporter, telemetry = make_exporter(span_metrics_expiration=60)
    export(exporter, trace_request([SpanSpec(cost=0.1, model="old")]))
    clock[0] += 30
    export(exporter, trace_request([SpanSpec(cost=0.1, model="new")]))
    clock[0] += 45
    samples, _ = samples_of(scrape(exporter)[0])
    models = {
        dict(k[1]).get("gen_ai_request_model") for k in samples if k[0] == "gen_ai_client_cost_usd_total"
    }
    assert models == {"new"}
    assert telemetry.value("otel_receiver_prometheus_expired_series_total", {"exporter": "prometheus"}) > 0


def test_config_rejects_bad_values() -> None:
    from pydantic import ValidationError

    from exporters.prometheus import factory

    for bad in (
        {"endpoint": "no-port"},
        {"endpoint": "127.0.0.1:99999"},
        {"max_series_per_metric": 0},
        {"tenant_label": "sometimes"},
        {"const_labels": {"bad-name": "x"}},
        {"unknown_key": 1},
    ):
        with pytest.raises(ValidationError):
            factory.config_model(**bad)


def test_a_self_metric_named_like_a_span_metric_is_not_exposed_twice() -> None:
    from prometheus_client import Counter

    exporter, telemetry = make_exporter()
    # what the pii_redaction processor registers on the shared registry
    clash = Counter("pii_redactions", "by the processor", ["type"], registry=telemetry.registry)
    clash.labels("EMAIL").inc(5)
    _, types = samples_of(scrape(exporter)[0])  # rejects a family exposed twice
    assert "pii_redactions" not in types  # the name stays reserved before spans arrive
    export(exporter, trace_request([SpanSpec(pii_types=["EMAIL"], pii_count=2)]))
    for accept in ("", OPENMETRICS_ACCEPT):
        samples, _ = samples_of(scrape(exporter, accept)[0], openmetrics=bool(accept))
        assert total(samples, "pii_redactions_total") == 2
    # without span metrics the processor's own counter is what the endpoint shows
    plain, telemetry = make_exporter(span_metrics=False)
    Counter("pii_redactions", "by the processor", ["type"], registry=telemetry.registry).labels("EMAIL").inc(
        5
    )
    samples, _ = samples_of(scrape(plain)[0])
    assert value(samples, "pii_redactions_total", type="EMAIL") == 5


def test_usage_rolled_up_on_internal_agent_spans_is_not_counted_twice() -> None:
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    specs = [
        SpanSpec(operation="invoke_agent", input_tokens=300, output_tokens=50, kind=Span.SPAN_KIND_INTERNAL),
        SpanSpec(operation="chat", input_tokens=300, output_tokens=50, kind=Span.SPAN_KIND_CLIENT),
        SpanSpec(operation="invoke_agent", input_tokens=7, output_tokens=1, kind=Span.SPAN_KIND_CLIENT),
    ]
    exporter, _ = make_exporter()
    export(exporter, trace_request(specs))
    samples, _ = samples_of(scrape(exporter)[0])
    assert total(samples, "gen_ai_client_token_usage_sum", gen_ai_token_type="input") == 307
    # the agent span's duration still counts
    assert (
        total(samples, "gen_ai_client_operation_duration_seconds_count", gen_ai_operation_name="invoke_agent")
        == 2
    )
    exporter, _ = make_exporter(count_internal_agent_usage=True)
    export(exporter, trace_request(specs))
    samples, _ = samples_of(scrape(exporter)[0])
    assert total(samples, "gen_ai_client_token_usage_sum", gen_ai_token_type="input") == 607


def test_pii_redactions_of_log_records_are_counted() -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    import semconv
    from otel_receiver.attributes import set_int, set_str, set_str_array

    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    set_str(rl.resource.attributes, semconv.SERVICE_NAME, "chat-api")
    records = rl.scope_logs.add().log_records
    redacted = records.add()
    set_str_array(redacted.attributes, semconv.PII_REDACTED_TYPES, ["EMAIL", "PHONE"])
    set_int(redacted.attributes, semconv.PII_REDACTED_COUNT, 3)
    set_str(redacted.attributes, semconv.AUDIT_TENANT_ID, "acme")
    exact = records.add()  # as pii_redaction writes it now: counts per type
    set_str_array(exact.attributes, semconv.PII_REDACTED_TYPES, ["EMAIL", "PHONE"])
    set_int(exact.attributes, semconv.PII_REDACTED_COUNT, 3)
    exact.attributes.add(key=semconv.PII_REDACTED_COUNTS).value.array_value.values.add(int_value=1)
    exact.attributes[-1].value.array_value.values.add(int_value=2)
    set_str(exact.attributes, semconv.AUDIT_TENANT_ID, "globex")
    records.add().body.string_value = "nothing to redact"
    exporter, _ = make_exporter()
    export(exporter, req)
    samples, _ = samples_of(scrape(exporter)[0])

    def redactions(tenant: str, pii_type: str) -> float:
        labels = {"service_name": "chat-api", "tenant_id": tenant, "type": pii_type}
        return value(samples, "pii_redactions_total", **labels)

    # without counts (an older writer): the total split evenly over the types
    assert (redactions("acme", "EMAIL"), redactions("acme", "PHONE")) == (2, 1)
    assert (redactions("globex", "EMAIL"), redactions("globex", "PHONE")) == (1, 2)
    assert not [k for k in samples if k[0].startswith("gen_ai_")]
