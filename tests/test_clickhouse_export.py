# ruff: noqa: F811  (pytest fixtures imported from test_clickhouse_support)
"""The exporter on a real embedded ClickHouse engine (chDB): every stored field, column by column.

Hand-built requests set every field the tables keep, with every attribute value type;
the expected row values come from an independent Python implementation of the
Collector exporter's encoding (``test_clickhouse_support``), not from our SQL.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from exporters.clickhouse import client as client_module
from otel_receiver.component import RetryableExportError
from semconv import attributes as sc
from tests.test_clickhouse_support import (  # noqa: F401  (fixtures)
    NS,
    T0,
    TRACE_A,
    Running,
    av,
    check_logs,
    check_metrics,
    check_traces,
    clickhouse_dir,
    kv,
    logs_request,
    metrics_request,
    module_store,
    running,
    traces_request,
)


def test_every_trace_field_round_trips(running: Running) -> None:
    req = traces_request()
    running.export(req)
    assert check_traces(running, [req]) == 9


def test_attribute_encoding_matches_the_collector(running: Running) -> None:
    """Spot checks written out by hand, independent of the reference encoder."""
    running.export(traces_request())
    attrs = running.rows(
        "SELECT SpanAttributes AS a FROM `{db}`.otel_traces WHERE SpanName = 'POST /checkout'"
    )[0]["a"]
    assert attrs["bool.true"] == "true"
    assert attrs["int"] == "-9223372036854775807"
    assert attrs["double"] == "0.7"
    assert attrs["double.whole"] == "2"
    assert attrs["double.small"] == "1.5e-7"
    assert attrs["double.big"] == "1e+21"
    assert attrs["double.nan"] == "json: unsupported value: NaN"
    assert attrs["bytes"] == base64.b64encode(b"\x00\x01\xfe\xff binary").decode()
    assert attrs["empty"] == ""
    assert attrs["array"] == '["a\\u003c/b\\u003e\\u0026\\u2028",42,2.5,3,true,"AQI=",null]'
    assert attrs["array.empty"] == "[]"
    assert attrs["kvlist"] == '{"a":1,"m":1e-9,"z":"last"}'


def test_deeper_nesting_is_stored_as_json_like_the_collector(running: Running) -> None:
    """Arrays/maps inside arrays/maps: deeper than the SQL decodes, rendered in Python
    (``test_clickhouse_deep_values`` has the rest)."""
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = TRACE_A, b"\x01" * 8, "nested"
    inner = av(array=[av(int_value=1), av(string_value="x")])
    span.attributes.append(kv("deep", array=[inner]))
    running.export(req)
    got = running.rows("SELECT SpanAttributes['deep'] AS d FROM `{db}`.otel_traces")[0]["d"]
    assert got == '[[1,"x"]]'


def test_every_log_field_round_trips(running: Running) -> None:
    req = logs_request()
    running.export(req)
    assert check_logs(running, [req]) == 8
    bodies = {r["Body"] for r in running.rows("SELECT Body FROM `{db}`.otel_logs")}
    assert bodies >= {'{"code":500,"msg":"structured"}', '["x",1]', "12", "false"}


def test_every_metric_type_round_trips(running: Running) -> None:
    req = metrics_request()
    running.export(req)
    assert check_metrics(running, [req]) == {
        "gauge": 3,
        "sum": 2,
        "histogram": 2,
        "exponential_histogram": 1,
        "summary": 1,
    }


def test_replayed_batch_is_stored_once_in_every_table(running: Running) -> None:
    req = traces_request()
    genai = req.resource_spans[0].scope_spans[0].spans[0]
    genai.attributes.extend([kv(sc.GEN_AI_OPERATION_NAME, string_value="chat")])
    running.export(req, token="q:run1:1-5")
    running.export(req, token="q:run1:1-5")  # replay after a lost acknowledgement
    assert running.count("otel_traces") == 9
    assert running.count("otel_traces_trace_id_ts") == 2
    assert running.count("genai_calls") == 1
    running.export(req, token="q:run1:6-9")  # the same content as a new batch is new data
    assert running.count("otel_traces") == 18
    assert running.count("genai_calls") == 2
    running.export(logs_request(), token="q:run1:1-5")  # same token, other signal: not a replay
    assert running.count("otel_logs") == 8
    for _ in range(2):  # a metrics request goes to one input per kind; all deduplicated
        running.export(metrics_request(), token="q:run1:10-12")
    assert [running.count(f"otel_metrics_{k}") for k in ("gauge", "sum", "histogram", "summary")] == [
        3,
        2,
        2,
        1,
    ]


def test_grafana_style_trace_lookup_returns_the_whole_trace(running: Running) -> None:
    """Grafana's plugin: time range from otel_traces_trace_id_ts, then the spans in it."""
    running.export(traces_request())
    trace_id = TRACE_A.hex()
    spans = running.rows(
        "WITH '" + trace_id + "' AS trace_id, "
        "(SELECT min(Start) FROM `{db}`.otel_traces_trace_id_ts WHERE TraceId = trace_id) AS trace_start, "
        "(SELECT max(End) + 1 FROM `{db}`.otel_traces_trace_id_ts WHERE TraceId = trace_id) AS trace_end "
        "SELECT SpanId, ParentSpanId, SpanName FROM `{db}`.otel_traces "
        "WHERE TraceId = trace_id AND Timestamp >= trace_start AND Timestamp <= trace_end ORDER BY SpanId"
    )
    assert len(spans) == 8
    assert {s["ParentSpanId"] for s in spans} == {"", "b7ad6b7169203331"}
    assert running.rows(
        "SELECT toUnixTimestamp(Start) AS s, toUnixTimestamp(End) AS e FROM `{db}`.otel_traces_trace_id_ts "
        f"WHERE TraceId = '{trace_id}'"
    ) == [{"s": T0 // 10**9, "e": (T0 + 106) // 10**9}]


def _genai_span(req: ExportTraceServiceRequest, name: str, **attrs: Any) -> Any:
    span = req.resource_spans[0].scope_spans[0].spans.add()
    span.trace_id = TRACE_A
    span.span_id = bytes([len(req.resource_spans[0].scope_spans[0].spans)]) * 8
    span.name = name
    span.start_time_unix_nano = T0
    span.end_time_unix_nano = T0 + 2_000_000_000
    for key, value in attrs.items():
        span.attributes.append(value if isinstance(value, type(kv("x"))) else kv(key, **value))
    return span


def test_genai_calls_rows_match_genai_spans(running: Running) -> None:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv(sc.SERVICE_NAME, string_value="support-bot"))
    rs.scope_spans.add()
    chat = _genai_span(req, "chat gpt-4o")
    chat.attributes.extend(
        [
            kv(sc.GEN_AI_OPERATION_NAME, string_value="chat"),
            kv(sc.GEN_AI_PROVIDER_NAME, string_value="openai"),
            kv(sc.GEN_AI_REQUEST_MODEL, string_value="gpt-4o"),
            kv(sc.GEN_AI_RESPONSE_MODEL, string_value="gpt-4o-2024-08-06"),
            kv(sc.GEN_AI_USAGE_INPUT_TOKENS, int_value=1200),
            kv(sc.GEN_AI_USAGE_OUTPUT_TOKENS, int_value=300),
            kv(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, int_value=1000),
            kv(sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, int_value=50),
            kv(sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, int_value=120),
            kv(sc.GEN_AI_USAGE_COST, double_value=0.004675),
            kv(sc.AUDIT_TENANT_ID, string_value="acme"),
            kv(sc.ANOMALY_FLAGGED, bool_value=True),
            kv(sc.ANOMALY_KINDS, array=[av(string_value="latency"), av(string_value="cost")]),
        ]
    )
    failed = _genai_span(req, "embeddings text-embedding-3-small")
    failed.attributes.extend(
        [
            kv(sc.GEN_AI_OPERATION_NAME, string_value="embeddings"),
            kv(sc.GEN_AI_PROVIDER_NAME, string_value="openai"),
            kv(sc.GEN_AI_REQUEST_MODEL, string_value="text-embedding-3-small"),
            kv(sc.GEN_AI_USAGE_COST, double_value=1e-7),
            kv(sc.ERROR_TYPE, string_value="RateLimitError"),
        ]
    )
    failed.status.code = 2
    unnamed_error = _genai_span(req, "invoke_agent")
    unnamed_error.attributes.append(kv(sc.GEN_AI_OPERATION_NAME, string_value="invoke_agent"))
    unnamed_error.status.code = 2
    plain = _genai_span(req, "GET /health")
    plain.attributes.append(kv("http.request.method", string_value="GET"))
    running.export(req)
    rows = running.rows(
        f"SELECT *, {NS}(Timestamp) AS ts, toString(CostUsd) AS cost "
        "FROM `{db}`.genai_calls ORDER BY SpanId"
    )
    assert [r["Operation"] for r in rows] == ["chat", "embeddings", "invoke_agent"]  # no row for GET /health
    first = rows[0]
    assert first["TraceId"] == TRACE_A.hex()
    assert first["SpanId"] == chat.span_id.hex()
    assert first["ts"] == T0
    expected = {
        "ServiceName": "support-bot",
        "TenantId": "acme",
        "Provider": "openai",
        "RequestModel": "gpt-4o",
        "ResponseModel": "gpt-4o-2024-08-06",
        "InputTokens": 1200,
        "OutputTokens": 300,
        "CacheReadTokens": 1000,
        "CacheWriteTokens": 50,
        "ReasoningTokens": 120,
        "cost": "0.004675",
        "DurationNs": 2_000_000_000,
        "ErrorType": "",
        "AnomalyKinds": ["latency", "cost"],
    }
    assert {k: first[k] for k in expected} == expected
    assert (rows[1]["cost"], rows[1]["ErrorType"], rows[1]["AnomalyKinds"]) == (
        "0.0000001",
        "RateLimitError",
        [],
    )
    assert rows[2]["ErrorType"] == "_OTHER"  # failed without error.type: the semconv fallback


def test_agent_spans_that_sum_their_children_do_not_count_tokens_twice(running: Running) -> None:
    """genai_cost's rule: an INTERNAL agent/tool span's usage is its children's, unless
    it was priced itself; a CLIENT call to a remote agent is a call of its own."""
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add()
    usage = [kv(sc.GEN_AI_USAGE_INPUT_TOKENS, int_value=700), kv(sc.GEN_AI_USAGE_OUTPUT_TOKENS, int_value=70)]
    agent = [kv(sc.GEN_AI_OPERATION_NAME, string_value="invoke_agent"), *usage]
    roll_up = _genai_span(req, "invoke_agent planner")
    roll_up.attributes.extend(agent)
    remote = _genai_span(req, "invoke_agent remote")
    remote.kind = 3  # CLIENT
    remote.attributes.extend(agent)
    priced = _genai_span(req, "invoke_agent priced")
    priced.attributes.extend([*agent, kv(sc.GEN_AI_USAGE_COST, double_value=0.001)])
    child = _genai_span(req, "chat gpt-4o")
    child.attributes.extend([kv(sc.GEN_AI_OPERATION_NAME, string_value="chat"), *usage])
    running.export(req)
    rows = running.rows("SELECT SpanId, InputTokens, OutputTokens FROM `{db}`.genai_calls ORDER BY SpanId")
    tokens = {bytes.fromhex(r["SpanId"]): (r["InputTokens"], r["OutputTokens"]) for r in rows}
    assert tokens == {
        roll_up.span_id: (0, 0),
        remote.span_id: (700, 70),
        priced.span_id: (700, 70),
        child.span_id: (700, 70),
    }


def test_outage_then_recovery_stores_every_span_once(running: Running) -> None:
    """The target table goes away (as on a lost disk or a dropped table), then comes back."""
    db = running.config.database
    store = running.exporter.store
    assert store is not None
    first = traces_request()
    running.export(first, token="b1")
    store.execute(f"DETACH TABLE `{db}`.otel_traces")
    second = traces_request()
    for rs in second.resource_spans:
        for span in rs.scope_spans[0].spans:
            span.span_id = bytes(b ^ 0x5A for b in span.span_id)
    for _ in range(2):  # the queue retries with the same token while the store is down
        with pytest.raises(RetryableExportError):
            running.export(second, token="b2")
    store.execute(f"ATTACH TABLE `{db}`.otel_traces")
    running.export(second, token="b2")
    running.export(second, token="b2")  # a late duplicate of the successful retry
    assert running.count("otel_traces") == 18
    ids = running.rows("SELECT SpanId, count() AS n FROM `{db}`.otel_traces GROUP BY SpanId HAVING n > 1")
    assert ids == []
    telemetry = running.exporter.settings.telemetry
    labels = {"exporter": "clickhouse", "signal": "traces"}
    assert (
        telemetry.value("otel_receiver_clickhouse_insert_errors_total", {**labels, "kind": "retryable"}) == 2
    )
    assert telemetry.value("otel_receiver_clickhouse_insert_seconds_count", labels) >= 3
    assert telemetry.value("otel_receiver_clickhouse_insert_bytes_total", labels) > 0


def test_lost_engine_connection_is_retried_and_reopened(running: Running) -> None:
    """A chDB connection closed under the exporter fails the export as retryable; the
    retry opens a new connection and stores the batch once."""
    for session in client_module._embedded_pools["rw"].idle_sessions():
        session.close()
    with pytest.raises(RetryableExportError, match="connection was lost"):
        running.export(traces_request(), token="after-loss")
    running.export(traces_request(), token="after-loss")
    assert running.count("otel_traces") == 9


def test_empty_batch_writes_nothing(running: Running) -> None:
    running.export(ExportTraceServiceRequest())
    assert running.count("otel_traces") == 0


def test_structured_log_bodies_decode_three_levels(running: Running) -> None:
    req = ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    leaf = av(array=[av(int_value=1)])
    bodies = [
        av(kvlist=[kv("http", kvlist=[kv("req", kvlist=[kv("method", string_value="GET")])])]),
        av(array=[av(array=[av(array=[av(string_value="deep")])])]),
        av(kvlist=[kv("a", kvlist=[kv("b", kvlist=[kv("c", array=leaf.array_value.values)])])]),
    ]
    for i, body in enumerate(bodies):
        rec = sl.log_records.add()
        rec.time_unix_nano = T0 + i
        rec.body.CopyFrom(body)
        rec.attributes.append(kv("ctx", kvlist=[kv("user", kvlist=[kv("id", int_value=7)])]))
    running.export(req)
    rows = running.rows("SELECT Body, LogAttributes AS a FROM `{db}`.otel_logs ORDER BY Timestamp")
    assert rows[0]["Body"] == '{"http":{"req":{"method":"GET"}}}'
    assert rows[1]["Body"] == '[[["deep"]]]'
    # A fourth level is rendered in Python, to the same text.
    assert rows[2]["Body"] == '{"a":{"b":{"c":[1]}}}'
    assert rows[0]["a"] == {"ctx": '{"user":{"id":7}}'}


def test_genai_cost_is_rounded_to_nine_decimals_not_truncated(running: Running) -> None:
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add()
    for name, cost in (("half-up", 8.75e-09), ("below-half", 1.2344e-07), ("exact", 1.437060)):
        span = _genai_span(req, name)
        span.attributes.extend(
            [kv(sc.GEN_AI_OPERATION_NAME, string_value="chat"), kv(sc.GEN_AI_USAGE_COST, double_value=cost)]
        )
    running.export(req)
    rows = running.rows("SELECT toString(CostUsd) AS cost FROM `{db}`.genai_calls ORDER BY SpanId")
    assert [r["cost"] for r in rows] == ["0.000000009", "0.000000123", "1.43706"]


def test_out_of_range_cost_does_not_fail_the_insert(running: Running) -> None:
    """CostUsd is Decimal(18, 9): a bogus cost of 1e15 USD must not overflow the insert
    (which would fail every retry of the batch); the row gets 0, the span keeps its text."""
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add()
    for name, cost in (("a-bogus", 1e15), ("b-negative-bogus", -5e12), ("c-fine", 0.25)):
        span = _genai_span(req, name)
        span.attributes.extend(
            [kv(sc.GEN_AI_OPERATION_NAME, string_value="chat"), kv(sc.GEN_AI_USAGE_COST, double_value=cost)]
        )
    running.export(req)
    rows = running.rows("SELECT toString(CostUsd) AS cost FROM `{db}`.genai_calls ORDER BY SpanId")
    assert [r["cost"] for r in rows] == ["0", "0", "0.25"]
    stored = running.rows(
        f"SELECT SpanAttributes['{sc.GEN_AI_USAGE_COST}'] AS c FROM `{{db}}`.otel_traces ORDER BY SpanName"
    )
    assert [r["c"] for r in stored] == ["1000000000000000", "-5000000000000", "0.25"]


def test_coalesced_parts_are_one_insert_equal_to_their_merge(running: Running) -> None:
    """The queue hands over its coalesced requests as parts; the exporter concatenates
    their serializations (no merged copy) into one insert per input table. Metric parts
    with different kinds reach every kind's table; a replay of the same parts is dropped."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    full = metrics_request()
    kinds = [m.WhichOneof("data") for m in full.resource_metrics[0].scope_metrics[0].metrics]
    parts = []
    for metric in full.resource_metrics[0].scope_metrics[0].metrics:
        part = ExportMetricsServiceRequest()
        part.resource_metrics.add().CopyFrom(full.resource_metrics[0])
        del part.resource_metrics[0].scope_metrics[0].metrics[:]
        part.resource_metrics[0].scope_metrics[0].metrics.add().CopyFrom(metric)
        parts.append(part)
    running.export_parts(parts, token="parts-1")
    running.export_parts(parts, token="parts-1")  # a replay: deduplicated
    counts_from_parts = {k: running.count(f"otel_metrics_{k}") for k in set(kinds)}
    assert all(n > 0 for n in counts_from_parts.values())
    running.truncate()
    running.export(full, token="whole")
    assert {k: running.count(f"otel_metrics_{k}") for k in set(kinds)} == counts_from_parts

    traces = [traces_request(), traces_request()]
    running.export_parts(traces, token="parts-2")
    assert running.count("otel_traces") == 2 * 9
