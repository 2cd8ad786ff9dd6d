# ruff: noqa: F811  (pytest fixtures imported from test_clickhouse_support)
"""The schema step: Collector-compatible tables, TTL, cluster DDL, and config validation.

The single-node DDL runs for real on chDB; the cluster DDL (which needs ZooKeeper/Keeper
and several servers) is parsed by the same engine (``formatQuery``) and checked as text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from exporters.clickhouse import columns, wire
from exporters.clickhouse.config import ClickHouseConfig
from exporters.clickhouse.schema import (
    INSERT_PATHS,
    MERGE_SELECTOR_BASE,
    METRICS_PATHS,
    TRACES_PATH,
    Schema,
    insert_path,
    parse_ttl,
    ttl_clause,
)
from tests.test_clickhouse_support import (  # noqa: F401  (fixtures)
    Running,
    check_traces,
    clickhouse_dir,
    make_config,
    module_store,
    running,
    traces_request,
)

# Column names and types of the OpenTelemetry Collector contrib ClickHouse exporter
# (exporter/clickhouseexporter/internal/sqltemplates/*_table.sql), as ClickHouse
# reports them (Nested columns appear as Array sub-columns).
_ATTR = "Map(LowCardinality(String), String)"
_EXEMPLARS = [
    ("Exemplars.FilteredAttributes", f"Array({_ATTR})"),
    ("Exemplars.TimeUnix", "Array(DateTime64(9))"),
    ("Exemplars.Value", "Array(Float64)"),
    ("Exemplars.SpanId", "Array(String)"),
    ("Exemplars.TraceId", "Array(String)"),
]
_METRIC_HEAD = [
    ("ResourceAttributes", _ATTR),
    ("ResourceSchemaUrl", "String"),
    ("ScopeName", "String"),
    ("ScopeVersion", "String"),
    ("ScopeAttributes", _ATTR),
    ("ScopeDroppedAttrCount", "UInt32"),
    ("ScopeSchemaUrl", "String"),
    ("ServiceName", "LowCardinality(String)"),
    ("MetricName", "String"),
    ("MetricDescription", "String"),
    ("MetricUnit", "String"),
    ("Attributes", _ATTR),
    ("StartTimeUnix", "DateTime64(9)"),
    ("TimeUnix", "DateTime64(9)"),
]
COLLECTOR_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "otel_traces": [
        ("Timestamp", "DateTime64(9)"),
        ("TraceId", "String"),
        ("SpanId", "String"),
        ("ParentSpanId", "String"),
        ("TraceState", "String"),
        ("SpanName", "LowCardinality(String)"),
        ("SpanKind", "LowCardinality(String)"),
        ("ServiceName", "LowCardinality(String)"),
        ("ResourceAttributes", _ATTR),
        ("ScopeName", "String"),
        ("ScopeVersion", "String"),
        ("SpanAttributes", _ATTR),
        ("Duration", "UInt64"),
        ("StatusCode", "LowCardinality(String)"),
        ("StatusMessage", "String"),
        ("Events.Timestamp", "Array(DateTime64(9))"),
        ("Events.Name", "Array(LowCardinality(String))"),
        ("Events.Attributes", f"Array({_ATTR})"),
        ("Links.TraceId", "Array(String)"),
        ("Links.SpanId", "Array(String)"),
        ("Links.TraceState", "Array(String)"),
        ("Links.Attributes", f"Array({_ATTR})"),
    ],
    "otel_traces_trace_id_ts": [("TraceId", "String"), ("Start", "DateTime"), ("End", "DateTime")],
    "otel_logs": [
        ("Timestamp", "DateTime64(9)"),
        ("TimestampTime", "DateTime"),
        ("TraceId", "String"),
        ("SpanId", "String"),
        ("TraceFlags", "UInt8"),
        ("SeverityText", "LowCardinality(String)"),
        ("SeverityNumber", "UInt8"),
        ("ServiceName", "LowCardinality(String)"),
        ("Body", "String"),
        ("ResourceSchemaUrl", "LowCardinality(String)"),
        ("ResourceAttributes", _ATTR),
        ("ScopeSchemaUrl", "LowCardinality(String)"),
        ("ScopeName", "String"),
        ("ScopeVersion", "LowCardinality(String)"),
        ("ScopeAttributes", _ATTR),
        ("LogAttributes", _ATTR),
        ("EventName", "String"),
    ],
    "otel_metrics_gauge": [*_METRIC_HEAD, ("Value", "Float64"), ("Flags", "UInt32"), *_EXEMPLARS],
    "otel_metrics_sum": [
        *_METRIC_HEAD,
        ("Value", "Float64"),
        ("Flags", "UInt32"),
        *_EXEMPLARS,
        ("AggregationTemporality", "Int32"),
        ("IsMonotonic", "Bool"),
    ],
    "otel_metrics_histogram": [
        *_METRIC_HEAD,
        ("Count", "UInt64"),
        ("Sum", "Float64"),
        ("BucketCounts", "Array(UInt64)"),
        ("ExplicitBounds", "Array(Float64)"),
        *_EXEMPLARS,
        ("Flags", "UInt32"),
        ("Min", "Float64"),
        ("Max", "Float64"),
        ("AggregationTemporality", "Int32"),
    ],
    "otel_metrics_exponential_histogram": [
        *_METRIC_HEAD,
        ("Count", "UInt64"),
        ("Sum", "Float64"),
        ("Scale", "Int32"),
        ("ZeroCount", "UInt64"),
        ("PositiveOffset", "Int32"),
        ("PositiveBucketCounts", "Array(UInt64)"),
        ("NegativeOffset", "Int32"),
        ("NegativeBucketCounts", "Array(UInt64)"),
        *_EXEMPLARS,
        ("Flags", "UInt32"),
        ("Min", "Float64"),
        ("Max", "Float64"),
        ("AggregationTemporality", "Int32"),
    ],
    "otel_metrics_summary": [
        *_METRIC_HEAD,
        ("Count", "UInt64"),
        ("Sum", "Float64"),
        ("ValueAtQuantiles.Quantile", "Array(Float64)"),
        ("ValueAtQuantiles.Value", "Array(Float64)"),
        ("Flags", "UInt32"),
    ],
}

GENAI_COLUMNS = [
    ("Timestamp", "DateTime64(9)"),
    ("TraceId", "String"),
    ("SpanId", "String"),
    ("ServiceName", "LowCardinality(String)"),
    ("TenantId", "LowCardinality(String)"),
    ("Provider", "LowCardinality(String)"),
    ("RequestModel", "LowCardinality(String)"),
    ("ResponseModel", "LowCardinality(String)"),
    ("Operation", "LowCardinality(String)"),
    ("InputTokens", "UInt64"),
    ("OutputTokens", "UInt64"),
    ("CacheReadTokens", "UInt64"),
    ("CacheWriteTokens", "UInt64"),
    ("ReasoningTokens", "UInt64"),
    ("CostUsd", "Decimal(18, 9)"),
    ("DurationNs", "UInt64"),
    ("ErrorType", "LowCardinality(String)"),
    ("AnomalyKinds", "Array(String)"),
]


def _columns(r: Running, table: str) -> list[tuple[str, str]]:
    rows = r.rows(
        "SELECT name, type FROM system.columns WHERE database = '{db}' AND table = '"
        + table
        + "' ORDER BY position"
    )
    return [(row["name"], row["type"]) for row in rows]


@pytest.mark.parametrize("table", sorted(COLLECTOR_COLUMNS))
def test_tables_match_the_collector_exporter(running: Running, table: str) -> None:
    assert _columns(running, table) == COLLECTOR_COLUMNS[table]


def test_collector_ordering_keys_and_views(running: Running) -> None:
    rows = running.rows(
        "SELECT name, sorting_key, partition_key, engine FROM system.tables "
        "WHERE database = '{db}' ORDER BY name"
    )
    tables = {r["name"]: r for r in rows}
    assert tables["otel_traces"]["sorting_key"] == "ServiceName, SpanName, toDateTime(Timestamp)"
    assert tables["otel_traces"]["partition_key"] == "toDate(Timestamp)"
    assert tables["otel_logs"]["sorting_key"] == "ServiceName, TimestampTime, Timestamp"
    assert tables["otel_traces_trace_id_ts"]["sorting_key"] == "TraceId, Start"
    for kind in ("gauge", "sum", "histogram", "exponential_histogram", "summary"):
        key = tables[f"otel_metrics_{kind}"]["sorting_key"]
        assert key == "ServiceName, MetricName, Attributes, toUnixTimestamp64Nano(TimeUnix)"
    assert tables["otel_traces_trace_id_ts_mv"]["engine"] == "MaterializedView"
    assert tables["genai_calls_mv"]["engine"] == "MaterializedView"
    assert {tables[path.table]["engine"] for path in INSERT_PATHS} == {"Null"}
    assert {tables[path.view]["engine"] for path in INSERT_PATHS} == {"MaterializedView"}


def test_genai_and_audit_tables(running: Running) -> None:
    assert _columns(running, "genai_calls") == GENAI_COLUMNS
    audit = dict(_columns(running, "audit_log"))
    assert audit["PrevHash"] == audit["RecordHash"] == "String"
    assert {"Timestamp", "RecordId", "TenantId", "ActorId", "Action", "ResourceType"} <= set(audit)


def test_deduplication_window_on_every_table(running: Running) -> None:
    rows = running.rows(
        "SELECT name, create_table_query AS q FROM system.tables "
        "WHERE database = '{db}' AND engine = 'MergeTree'"
    )
    assert len(rows) == 10
    for row in rows:
        assert "non_replicated_deduplication_window = 1000" in row["q"], row["name"]


def test_wider_merges_on_every_table_the_engine_knows_the_setting(running: Running) -> None:
    rows = running.rows(
        "SELECT name, create_table_query AS q FROM system.tables "
        "WHERE database = '{db}' AND engine LIKE '%MergeTree'"
    )
    assert len(rows) >= 10
    for row in rows:
        assert f"merge_selector_base = {MERGE_SELECTOR_BASE}" in row["q"], row["name"]
    older_server = Schema(merge_selector_base=None).statements()
    assert not any("merge_selector_base" in sql for sql in older_server)


@pytest.mark.parametrize(
    ("text", "clause"),
    [
        ("30d", "TTL toDateTime(Timestamp) + toIntervalDay(30)"),
        ("72h", "TTL toDateTime(Timestamp) + toIntervalDay(3)"),
        ("36h", "TTL toDateTime(Timestamp) + toIntervalHour(36)"),
        ("90m", "TTL toDateTime(Timestamp) + toIntervalMinute(90)"),
        ("45s", "TTL toDateTime(Timestamp) + toIntervalSecond(45)"),
        ("2w", "TTL toDateTime(Timestamp) + toIntervalDay(14)"),
        ("0", ""),
    ],
)
def test_ttl_clause(text: str, clause: str) -> None:
    assert ttl_clause(parse_ttl(text), "toDateTime(Timestamp)") == clause


def test_ttl_in_every_telemetry_table_but_not_audit() -> None:
    statements = Schema(ttl_seconds=parse_ttl("72h")).statements()
    tables = {_table_name(s): s for s in statements if s.startswith("CREATE TABLE")}
    assert "TTL toDateTime(Timestamp) + toIntervalDay(3)" in tables["otel_traces"]
    assert "TTL TimestampTime + toIntervalDay(3)" in tables["otel_logs"]
    assert "TTL toDateTime(Start) + toIntervalDay(3)" in tables["otel_traces_trace_id_ts"]
    assert "TTL toDateTime(TimeUnix) + toIntervalDay(3)" in tables["otel_metrics_sum"]
    assert "TTL toDateTime(Timestamp) + toIntervalDay(3)" in tables["genai_calls"]
    assert "TTL" not in tables["audit_log"]


def test_ttl_table_created_on_chdb(running: Running) -> None:
    store = running.exporter.store
    assert store is not None
    db = running.config.database + "_ttl"
    try:
        for statement in Schema(db, ttl_seconds=parse_ttl("30d")).statements()[:2]:
            store.execute(statement)
        ddl = running.rows(f"SELECT create_table_query AS q FROM system.tables WHERE database = '{db}'")[0][
            "q"
        ]
        assert "TTL toDateTime(Timestamp) + toIntervalDay(30)" in ddl
    finally:
        store.execute(f"DROP DATABASE IF EXISTS `{db}`")


def test_cluster_ddl(running: Running) -> None:
    statements = Schema("otel", cluster="prod", ttl_seconds=86400).statements()
    store = running.exporter.store
    assert store is not None
    for s in statements:
        assert " ON CLUSTER `prod`" in s.split("\n")[0], s[:120]
        # The engine's own parser accepts every statement.
        formatted = store.query("SELECT formatQuery(" + _literal(s) + ")", "TSVRaw").decode()
        assert "ON CLUSTER prod" in formatted
    local = [s for s in statements if "ReplicatedMergeTree" in s]
    distributed = [s for s in statements if "ENGINE = Distributed" in s]
    assert len(local) == len(distributed) == 10
    assert not any("ENGINE = MergeTree" in s or "non_replicated" in s for s in statements)
    assert "ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')" in local[0]
    dist = {_table_name(s): s for s in distributed}
    assert "Distributed(`prod`, `otel`, `otel_traces_local`, cityHash64(TraceId))" in dist["otel_traces"]
    assert "AS `otel`.`otel_logs_local`" in dist["otel_logs"]
    views = {s.split("`")[3]: s for s in statements if "MATERIALIZED VIEW" in s}
    # Row-table views run on each shard's local table; input views write through Distributed tables.
    assert "TO `otel`.`otel_traces_trace_id_ts_local`" in views["otel_traces_trace_id_ts_mv_local"]
    assert "FROM `otel`.`otel_traces_local`" in views["genai_calls_mv_local"]
    assert "TO `otel`.`otel_traces`\n" in views[TRACES_PATH.view]
    assert "TO `otel`.`otel_metrics_summary`\n" in views[METRICS_PATHS["summary"].view]


def _table_name(statement: str) -> str:
    m = re.search(r"`otel`\.`(\w+)`", statement)
    assert m is not None
    return m.group(1)


def _literal(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"endpoint": "tcp://x:9000"}, "endpoint must be"),
        ({"endpoint": "embedded:"}, "needs a directory"),
        ({"database": "otel; DROP"}, "plain identifier"),
        ({"ttl": "3 days"}, "ttl"),
        ({"cluster": "prod"}, "cluster needs a ClickHouse server"),
        ({"query_endpoint": "9181"}, "host:port"),
        ({"tls": {"cert_file": "c.pem"}}, "go together"),
        ({"unknown": 1}, "Extra inputs"),
    ],
)
def test_config_errors(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ClickHouseConfig(**overrides)  # type: ignore[arg-type]


def test_config_defaults() -> None:
    cfg = ClickHouseConfig()
    assert cfg.embedded and cfg.embedded_path == "./otel-data"
    assert cfg.database == "otel" and cfg.create_schema and cfg.ttl_seconds == 0
    assert cfg.query_endpoint == "127.0.0.1:9181"
    batch = cfg.sending_queue.batch
    assert (batch.enabled, batch.min_size, batch.flush_timeout) == (True, 10_000, 1.0)
    server = ClickHouseConfig(endpoint="https://ch.example.com:8443", cluster="prod", query_endpoint=None)
    assert not server.embedded and server.cluster == "prod"


def test_restart_skips_existing_objects(running: Running) -> None:
    schema = Schema(running.config.database)
    existing = {r["name"] for r in running.rows("SELECT name FROM system.tables WHERE database = '{db}'")}
    assert schema.missing_statements(existing) == [schema.statements()[0]]  # only CREATE DATABASE
    assert schema.missing_statements(existing - {"genai_calls_mv"})[1:] == [
        s
        for s in schema.statements()
        if s.startswith(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS `" + running.config.database + "`.`genai_calls_mv`"
        )
    ]
    cluster = Schema(running.config.database, cluster="c")
    assert cluster.missing_statements(existing) == cluster.statements()


def test_insert_path_names_follow_their_sql() -> None:
    same = insert_path("traces", "otel_traces", wire.TRACES_INPUT, columns.traces_select)
    assert (same.table, same.view) == (TRACES_PATH.table, TRACES_PATH.view)
    assert re.fullmatch(r"otlp_traces_in_[0-9a-f]{8}", same.table)

    def changed(source: str) -> str:
        return columns.traces_select(source).replace("StatusMessage", "StatusMessage ", 1)

    other = insert_path("traces", "otel_traces", wire.TRACES_INPUT, changed)
    assert other.table != same.table and other.view != same.view
    assert len({path.table for path in INSERT_PATHS}) == len(INSERT_PATHS)


def test_upgrade_replaces_an_earlier_releases_insert_path(clickhouse_dir: Path) -> None:
    """A store created by an earlier release keeps that release's views (the schema step
    only creates what is missing). The upgraded exporter must insert through its own
    SQL and retire the old path: the embedded store belongs to this process alone."""
    config = make_config(clickhouse_dir)
    db = config.database
    first = Running(config)
    try:
        assert first.exporter.store is not None
        run = first.exporter.store.execute
        # What the first release left: unversioned names, SQL that differs from ours.
        run(f"DROP VIEW `{db}`.`{TRACES_PATH.view}`")
        run(f"DROP TABLE `{db}`.`{TRACES_PATH.table}`")
        run(f"CREATE TABLE `{db}`.otlp_traces_in ({wire.TRACES_INPUT}) ENGINE = Null")
        old_select = columns.traces_select(f"`{db}`.otlp_traces_in")
        assert "row.4.name AS SpanName," in old_select
        old_select = old_select.replace("row.4.name AS SpanName,", "'old release' AS SpanName,")
        run(f"CREATE MATERIALIZED VIEW `{db}`.otlp_traces_mv TO `{db}`.otel_traces AS {old_select}")
        run(f"CREATE TABLE `{db}`.otlp_logs_in_0123abcd ({wire.LOGS_INPUT}) ENGINE = Null")
    finally:
        first.close()

    upgraded = Running(config)
    try:
        names = {r["name"] for r in upgraded.rows("SELECT name FROM system.tables WHERE database = '{db}'")}
        assert not {"otlp_traces_in", "otlp_traces_mv", "otlp_logs_in_0123abcd"} & names
        assert {TRACES_PATH.table, TRACES_PATH.view} <= names
        request = traces_request()
        upgraded.export(request)
        assert check_traces(upgraded, [request]) > 0
        old = upgraded.rows("SELECT count() AS n FROM `{db}`.otel_traces WHERE SpanName = 'old release'")
        assert old == [{"n": 0}]
    finally:
        upgraded.close()
