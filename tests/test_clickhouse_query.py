# ruff: noqa: F811  (pytest fixtures imported from test_clickhouse_support)
"""Reading the store: the read-only query endpoint, ``run_query`` and ``run_report``."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from exporters.clickhouse.query import QueryError, report_sql, run_query, run_report
from semconv import attributes as sc
from tests.conftest import free_port
from tests.test_clickhouse_support import (  # noqa: F401  (fixtures)
    T0,
    Running,
    av,
    clickhouse_dir,
    kv,
    make_config,
)


def _calls() -> ExportTraceServiceRequest:
    """Six GenAI calls of two services, models and tenants, plus one plain span."""
    req = ExportTraceServiceRequest()
    import time

    now = time.time_ns()
    for i, (service, model, tenant, cost, ms, failed, kinds) in enumerate(
        [
            ("bot", "gpt-4o", "acme", 0.01, 100, False, []),
            ("bot", "gpt-4o", "acme", 0.03, 300, True, ["latency"]),
            ("bot", "claude-sonnet-4", "globex", 0.02, 200, False, []),
            ("rag", "gpt-4o", "", 0.04, 400, False, ["cost", "latency"]),
            ("rag", "claude-sonnet-4", "globex", 0.05, 500, False, []),
            ("rag", "claude-sonnet-4", "globex", 0.06, 600, True, []),
        ]
    ):
        rs = req.resource_spans.add()
        rs.resource.attributes.append(kv(sc.SERVICE_NAME, string_value=service))
        span = rs.scope_spans.add().spans.add()
        span.trace_id = bytes([i + 1]) * 16
        span.span_id = bytes([i + 1]) * 8
        span.name = f"chat {model}"
        span.start_time_unix_nano = now - 60_000_000_000
        span.end_time_unix_nano = span.start_time_unix_nano + ms * 1_000_000
        span.attributes.extend(
            [
                kv(sc.GEN_AI_OPERATION_NAME, string_value="chat"),
                kv(sc.GEN_AI_PROVIDER_NAME, string_value="openai" if "gpt" in model else "anthropic"),
                kv(sc.GEN_AI_REQUEST_MODEL, string_value=model),
                kv(sc.GEN_AI_USAGE_INPUT_TOKENS, int_value=1000 * (i + 1)),
                kv(sc.GEN_AI_USAGE_OUTPUT_TOKENS, int_value=100),
                kv(sc.GEN_AI_USAGE_COST, double_value=cost),
            ]
        )
        if tenant:
            span.attributes.append(kv(sc.AUDIT_TENANT_ID, string_value=tenant))
        if kinds:
            span.attributes.append(kv(sc.ANOMALY_KINDS, array=[av(string_value=k) for k in kinds]))
        if failed:
            span.attributes.append(kv(sc.ERROR_TYPE, string_value="timeout"))
            span.status.code = 2
    plain = req.resource_spans[0].scope_spans[0].spans.add()
    plain.trace_id, plain.span_id, plain.name = b"\x09" * 16, b"\x09" * 8, "GET /"
    plain.start_time_unix_nano = T0
    return req


@pytest.fixture(scope="module")
def served(clickhouse_dir: Path) -> Iterator[Running]:
    r = Running(make_config(clickhouse_dir, query_endpoint=f"127.0.0.1:{free_port()}"))
    try:
        r.export(_calls(), token="calls")
        yield r
    finally:
        r.close()


def test_endpoint_json_is_one_object_per_row(served: Running) -> None:
    out = run_query(
        served.config, "SELECT ServiceName, count() AS n FROM otel_traces GROUP BY 1 ORDER BY 1", "json"
    )
    assert [json.loads(line) for line in out.splitlines()] == [
        {"ServiceName": "bot", "n": 4},
        {"ServiceName": "rag", "n": 3},
    ]


def test_endpoint_csv_and_table(served: Running) -> None:
    csv = run_query(
        served.config, "SELECT RequestModel, count() AS n FROM genai_calls GROUP BY 1 ORDER BY 1", "csv"
    )
    assert csv.splitlines() == ['"RequestModel","n"', '"claude-sonnet-4",3', '"gpt-4o",3']
    table = run_query(served.config, "SELECT 'x' AS col, 42 AS answer", "table")
    assert "col" in table and "answer" in table and "42" in table and "\x1b" not in table


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO otel_traces (TraceId) VALUES ('forged')",
        "CREATE TABLE evil (x UInt8) ENGINE = Memory",
        "DROP TABLE otel_traces",
        "SELECT 1 SETTINGS readonly = 0",
        "SET readonly = 0",
        "TRUNCATE TABLE genai_calls",
    ],
)
def test_engine_refuses_writes_through_the_endpoint(served: Running, sql: str) -> None:
    with pytest.raises(QueryError, match=r"readonly|READONLY|Cannot modify 'readonly'"):
        run_query(served.config, sql, "json")
    assert served.count("otel_traces") == 7
    assert served.count("genai_calls") == 6


def test_endpoint_status_and_store_mismatch(served: Running, tmp_path: Path) -> None:
    assert served.config.query_endpoint is not None
    with urllib.request.urlopen(f"http://{served.config.query_endpoint}/status", timeout=5) as resp:
        status = json.loads(resp.read())
    assert status == {
        "store": str(Path(served.config.embedded_path).resolve()),
        "database": served.config.database,
    }
    other = make_config(
        tmp_path, query_endpoint=served.config.query_endpoint, database=served.config.database
    )
    with pytest.raises(QueryError, match="serves the store"):
        run_query(other, "SELECT 1", "json")


def test_sql_errors_are_reported(served: Running) -> None:
    with pytest.raises(QueryError, match=r"UNKNOWN_TABLE|does not exist"):
        run_query(served.config, "SELECT * FROM no_such_table", "json")
    with pytest.raises(QueryError, match="unknown format"):
        run_query(served.config, "SELECT 1", "xml")  # type: ignore[arg-type]


def test_direct_store_when_no_receiver_answers(served: Running) -> None:
    # Nothing listens on this endpoint: the store is opened directly (read-only).
    cfg = served.config.model_copy(update={"query_endpoint": f"127.0.0.1:{free_port()}"})
    out = run_query(cfg, "SELECT count() AS n FROM genai_calls", "json")
    assert json.loads(out) == {"n": 6}
    with pytest.raises(QueryError, match=r"readonly|READONLY"):
        run_query(cfg, "INSERT INTO genai_calls (TraceId) VALUES ('x')", "json")


def _report_rows(served: Running, by: str) -> list[dict[str, object]]:
    out = run_query(served.config, report_sql(served.config.database, 3600, by), "json")
    return [json.loads(line) for line in out.splitlines()]


def test_report_by_model(served: Running) -> None:
    rows = {r["model"]: r for r in _report_rows(served, "model")}
    claude, gpt = rows["claude-sonnet-4"], rows["gpt-4o"]
    assert (claude["provider"], claude["calls"], claude["cost_usd"]) == ("anthropic", 3, 0.13)
    assert (gpt["calls"], gpt["input_tokens"], gpt["output_tokens"], gpt["cost_usd"]) == (3, 7000, 300, 0.08)
    assert (claude["p50_ms"], claude["p95_ms"]) == (500, 600)
    assert claude["error_pct"] == 33.33 and gpt["error_pct"] == 33.33
    assert gpt["anomalies"] == 2 and gpt["anomaly_kinds"] == "cost=1 latency=2"
    assert claude["anomalies"] == 0


def test_report_by_service_and_tenant(served: Running) -> None:
    by_service = {r["service"]: r["calls"] for r in _report_rows(served, "service")}
    assert by_service == {"bot": 3, "rag": 3}
    by_tenant = {r["tenant"]: r["calls"] for r in _report_rows(served, "tenant")}
    assert by_tenant == {"acme": 2, "globex": 3, "(none)": 1}


def test_report_table_and_errors(served: Running) -> None:
    table = run_report(served.config, "1h", "model")
    assert "claude-sonnet-4" in table and "p95_ms" in table and "cost_usd" in table
    assert run_report(served.config, "1s", "model").startswith("no GenAI calls")
    with pytest.raises(QueryError, match="--since"):
        run_report(served.config, "yesterday", "model")
