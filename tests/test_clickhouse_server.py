# ruff: noqa: F811  (pytest fixtures imported from test_clickhouse_support)
"""The clickhouse-connect path, tested at its seams (no ClickHouse server can run here).

What a server would receive is built by clickhouse-connect's own request planner from
the arguments our ``ServerStore`` hands to ``Client.raw_insert``, then replayed into
the same tables on the embedded engine: the statement, the settings and the body a
server gets are shown to produce the right rows. Connection handling is exercised
against a loopback port with nothing listening. Not covered: a live server's HTTP
responses, TLS handshakes, and cluster-wide DDL (see the exporter README).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from clickhouse_connect.driver._backend.httpcommon import plan_raw_insert_request
from clickhouse_connect.driver._backend.models import QueryRuntime

from exporters.clickhouse.client import (
    ServerStore,
    StoreError,
    raw_insert_arguments,
    server_client_kwargs,
    server_insert_settings,
    settings_clause,
)
from exporters.clickhouse.config import ClickHouseConfig, TLSConfig
from exporters.clickhouse.exporter import insert_settings
from exporters.clickhouse.schema import LOGS_INPUT, METRICS_INPUT, TRACES_INPUT
from otel_receiver.component import RequestContext, RetryableExportError, Signal
from tests.test_clickhouse_support import (  # noqa: F401  (fixtures)
    Running,
    clickhouse_dir,
    logs_request,
    make_exporter,
    metrics_request,
    module_store,
    running,
    traces_request,
)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_client_arguments_from_config() -> None:
    cfg = ClickHouseConfig(
        endpoint="https://ch.internal:9443",
        database="telemetry",
        username="writer",
        password="s3cret",
        compression="zstd",
        tls=TLSConfig(
            ca_file="/etc/ca.pem", cert_file="/c.pem", key_file="/k.pem", server_name_override="ch"
        ),
        timeout=12,
        query_endpoint=None,
    )
    kwargs = server_client_kwargs(cfg)
    assert kwargs["host"] == "ch.internal" and kwargs["port"] == 9443 and kwargs["secure"] is True
    assert (kwargs["username"], kwargs["password"], kwargs["database"]) == ("writer", "s3cret", "telemetry")
    assert kwargs["compress"] == "zstd" and kwargs["send_receive_timeout"] == 12
    assert kwargs["verify"] is True and kwargs["ca_cert"] == "/etc/ca.pem"
    assert (kwargs["client_cert"], kwargs["client_cert_key"], kwargs["server_host_name"]) == (
        "/c.pem",
        "/k.pem",
        "ch",
    )
    plain = server_client_kwargs(ClickHouseConfig(endpoint="http://localhost", compression="none"))
    assert (plain["port"], plain["secure"], plain["compress"]) == (8123, False, False)
    assert "verify" not in plain


def test_async_insert_and_cluster_settings() -> None:
    assert server_insert_settings(ClickHouseConfig(endpoint="http://h:8123")) == {}
    settings = server_insert_settings(
        ClickHouseConfig(endpoint="http://h:8123", async_insert=True, cluster="c")
    )
    assert settings == {
        "async_insert": 1,
        "wait_for_async_insert": 1,
        "async_insert_deduplicate": 1,
        "distributed_foreground_insert": 1,
    }


def _points(kind: str) -> int:
    return sum(
        len(getattr(m, kind).data_points)
        for rm in metrics_request().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.WhichOneof("data") == kind
    )


@pytest.mark.parametrize(
    ("signal", "make", "input_table", "table", "rows"),
    [
        (Signal.TRACES, traces_request, TRACES_INPUT, "otel_traces", 9),
        (Signal.LOGS, logs_request, LOGS_INPUT, "otel_logs", 8),
        *(
            (Signal.METRICS, metrics_request, METRICS_INPUT[kind], f"otel_metrics_{kind}", _points(kind))
            for kind in ("gauge", "sum", "histogram", "exponential_histogram", "summary")
        ),
    ],
)
def test_server_request_replayed_into_the_engine(
    running: Running, signal: Signal, make: object, input_table: str, table: str, rows: int
) -> None:
    """The HTTP request clickhouse-connect builds from our arguments writes the same rows."""
    assert rows > 0
    db = running.config.database
    server_cfg = ClickHouseConfig(endpoint="http://127.0.0.1:8123", database=db, query_endpoint=None)
    body = make().SerializeToString()  # type: ignore[operator]
    settings = {**insert_settings(signal), "insert_deduplication_token": f"tok-{signal.value}"}
    args = raw_insert_arguments(server_cfg, input_table, body, settings)
    runtime = QueryRuntime(database=db, settings={k: str(v) for k, v in args["settings"].items()})
    plan = plan_raw_insert_request(
        args["table"], None, args["insert_block"], args["fmt"], None, runtime, None
    )
    statement, _, payload = plan.body.partition(b"\n")
    assert statement.decode() == f"INSERT INTO `{db}`.`{input_table}` FORMAT ProtobufSingle"
    assert payload == body
    assert plan.params["database"] == db
    assert plan.params["format_schema_source"] == "string"
    assert plan.params["insert_deduplication_token"] == f"tok-{signal.value}"
    # Replay on the embedded engine: the settings as a server would parse them (strings).
    http_settings = {k: v for k, v in plan.params.items() if k != "database"}
    replay = (
        statement.decode().removesuffix(" FORMAT ProtobufSingle")
        + " SETTINGS "
        + settings_clause(http_settings)
    )
    store = running.exporter.store
    assert store is not None
    with store._session("rw") as session:  # type: ignore[attr-defined]
        for _ in range(2):  # the second is a retry: deduplicated by the token
            inserter = session.send_insert(replay, "ProtobufSingle")
            inserter.append(payload)
            inserter.finish()
    assert running.count(table) == rows


def test_unreachable_server_is_retryable() -> None:
    cfg = ClickHouseConfig(endpoint=f"http://127.0.0.1:{_closed_port()}", timeout=3, query_endpoint=None)
    store = ServerStore(cfg)
    with pytest.raises(StoreError) as info:
        store.insert_request(TRACES_INPUT, b"", {})
    assert info.value.retryable
    store.close()


def test_exporter_starts_while_the_server_is_down_and_retries(clickhouse_dir: Path) -> None:
    cfg = ClickHouseConfig(endpoint=f"http://127.0.0.1:{_closed_port()}", timeout=3, query_endpoint=None)
    exporter = make_exporter(cfg)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(exporter.start())  # does not raise: the schema step waits
        with pytest.raises(RetryableExportError, match="schema"):
            loop.run_until_complete(exporter.export(traces_request(), RequestContext(dedup_token="t")))
    finally:
        loop.run_until_complete(exporter.shutdown())
        loop.close()


class RecordingClient:
    """Stands in for clickhouse-connect's ``Client`` (no ClickHouse server can run here):
    it records the calls ``ServerStore`` makes and answers like an empty server."""

    def __init__(self, merge_tree_settings: tuple[str, ...] = ()) -> None:
        self.commands: list[tuple[str, bool]] = []
        self.queries: list[tuple[str, object, str, bool]] = []
        self.merge_tree_settings = merge_tree_settings  # the table settings it knows

    def command(self, sql: str, use_database: bool = True) -> None:
        self.commands.append((sql, use_database))

    def raw_query(self, sql: str, settings: object = None, fmt: str = "", use_database: bool = True) -> bytes:
        self.queries.append((sql, settings, fmt, use_database))
        if "system.merge_tree_settings" in sql:
            return "".join(f"{name}\n" for name in self.merge_tree_settings if f"'{name}'" in sql).encode()
        return b""

    def close(self) -> None:
        pass


@pytest.mark.parametrize("server_knows_merge_selector_base", [True, False])
def test_server_schema_step_issues_ddl_the_engine_accepts(
    running: Running, monkeypatch: pytest.MonkeyPatch, server_knows_merge_selector_base: bool
) -> None:
    """The schema step on the server path sends DDL that, replayed on the real engine,
    creates exactly the tables the embedded path creates; reads run in readonly mode. A
    server older than the ``merge_selector_base`` table setting gets DDL without it."""
    import clickhouse_connect

    client = RecordingClient(("merge_selector_base",) if server_knows_merge_selector_base else ())
    monkeypatch.setattr(clickhouse_connect, "get_client", lambda **kwargs: client)
    database = running.config.database + "_srv"
    cfg = ClickHouseConfig(endpoint="http://127.0.0.1:8123", database=database, query_endpoint=None)
    exporter = make_exporter(cfg)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(exporter.start())
        store = exporter.store
        assert isinstance(store, ServerStore)
        store.query("SELECT count() FROM otel_traces", "JSONEachRow")
    finally:
        loop.run_until_complete(exporter.shutdown())
        loop.close()
    listing, knows_setting, user_query = client.queries
    assert listing[0].startswith("SELECT name FROM system.tables") and listing[1] is None
    assert "system.merge_tree_settings" in knows_setting[0]
    assert user_query[1] == {"readonly": 1}  # the engine's readonly mode, not string filtering
    assert client.commands and all(use_db is False for _, use_db in client.commands)
    tables_made = [sql for sql, _ in client.commands if "MergeTree" in sql]
    assert tables_made and all(
        ("merge_selector_base = 10" in sql) == server_knows_merge_selector_base for sql in tables_made
    )

    embedded = running.exporter.store
    assert embedded is not None
    for sql, _ in client.commands:
        embedded.execute(sql)

    def tables(db: str) -> set[str]:
        sql = f"SELECT name FROM system.tables WHERE database = '{db}'"
        return set(embedded.query(sql, "TabSeparatedRaw", False, False).decode().split())

    try:
        assert tables(database) == tables(running.config.database)
    finally:
        embedded.execute(f"DROP DATABASE IF EXISTS `{database}`")
