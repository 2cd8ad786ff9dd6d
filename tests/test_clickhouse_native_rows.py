# ruff: noqa: F811  (pytest fixtures imported from test_clickhouse_support)
"""The C row encoder (``exporters/clickhouse/_rows.c``): the same stored rows as the
SQL path for spans and log records, the Collector's value text, and no crash on any
input.

The differential tests insert the same requests through both paths into one real
chDB store (two databases) and compare every column of every table the inserts
fill, ``genai_calls`` and the trace-id lookup included.
"""

from __future__ import annotations

import logging
import math
import random
import struct
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from clickhouse_connect.driver._backend.httpcommon import plan_raw_insert_request
from clickhouse_connect.driver._backend.models import QueryRuntime
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from pydantic import ValidationError

from bench.workload import generate_logs_requests, generate_trace_requests
from exporters.clickhouse import _rows, deep_values, native
from exporters.clickhouse.client import raw_insert_arguments, settings_clause
from exporters.clickhouse.config import ClickHouseConfig
from exporters.clickhouse.schema import LOGS, TRACES
from otel_receiver.component import RequestContext
from tests.protobuf_wire import client_encoding
from tests.test_clickhouse_support import (  # noqa: F401  (fixtures)
    Running,
    as_string,
    av,
    clickhouse_dir,
    every_value_attributes,
    kv,
    logs_request,
    make_config,
    traces_request,
)


def test_the_encoder_is_built() -> None:
    """The extension is optional at install time; here it must have been built, or the
    suite would test the SQL path alone without saying so."""
    assert native.available()
    assert ClickHouseConfig().native_rows


# --------------------------------------------------------------------------------------
# Value text: pcommon.Value.AsString, with the SQL path's JSON escapes
# --------------------------------------------------------------------------------------


def stored_text(v: AnyValue) -> str:
    """What both paths store for an attribute value: the Collector's text, with
    ClickHouse's JSON string escapes inside arrays and maps (``deep_values``)."""
    if v.WhichOneof("value") in ("array_value", "kvlist_value"):
        return deep_values.container_text(v)
    return as_string(v)


_scalars = st.one_of(
    st.text(max_size=16).map(lambda s: av(string_value=s)),
    st.sampled_from(["<a&b>", "\u2028\u2029", '"\\/', "\x00\x1f\x7f", "é漢字🙂"]).map(
        lambda s: av(string_value=s)
    ),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: av(int_value=i)),
    st.floats().map(lambda f: av(double_value=f)),
    st.booleans().map(lambda b: av(bool_value=b)),
    st.binary(max_size=10).map(lambda b: av(bytes_value=b)),
    st.just(AnyValue()),
)
any_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda xs: av(array=xs)),
        st.lists(st.tuples(st.text(max_size=4), children), max_size=4).map(
            lambda pairs: av(kvlist=[KeyValue(key=k, value=v) for k, v in pairs])
        ),
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(any_values)
def test_value_text_is_the_stored_text(v: AnyValue) -> None:
    assert _rows.value_text(v.SerializeToString()).decode() == stored_text(v)


def test_doubles_are_the_shortest_round_trip_in_ecmascript_form() -> None:
    rng = random.Random(5)
    samples = [struct.unpack(">d", rng.randbytes(8))[0] for _ in range(20_000)]
    samples += [math.ldexp(1.0, e) for e in range(-1074, 1024)]  # the asymmetric intervals
    samples += [math.nextafter(math.ldexp(1.0, e), 0.0) for e in range(-1000, 1000, 7)]
    samples += [10.0**e for e in range(-30, 30)] + [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]
    samples += [0.1 + 0.2, 1 / 3, 123456789.125, 1e-6, 1e-7, 1e20, 1e21, 0.0, -0.0]
    for f in samples:
        if math.isfinite(f):
            got = _rows.value_text(av(double_value=f).SerializeToString()).decode()
            assert got == deep_values.ecmascript_float(f), repr(f)


def test_value_text_of_every_shape() -> None:
    for attribute in every_value_attributes():
        assert _rows.value_text(attribute.value.SerializeToString()).decode() == stored_text(attribute.value)


# --------------------------------------------------------------------------------------
# Malformed input: a precise error, never a crash
# --------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_or_encode(data: bytes) -> None:
    for encode, message in (
        (_rows.traces, "ExportTraceServiceRequest"),
        (_rows.logs, "ExportLogsServiceRequest"),
    ):
        try:
            encode([data])
        except ValueError as e:
            assert f"request 0: malformed {message}" in str(e)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_damaged_requests_raise_or_encode(data: st.DataObject) -> None:
    for encode, request, columns in (
        (_rows.traces, traces_request(), native.TRACES_COLUMNS),
        (_rows.logs, logs_request(), native.LOGS_COLUMNS),
    ):
        body = bytearray(request.SerializeToString())
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(body) - 1))
            body[i] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(body)))
        for candidate in (bytes(body), bytes(body[:cut])):
            try:
                block, rows = encode([candidate])
            except ValueError:
                continue
            assert rows >= 0 and block[:1] == bytes([len(columns)])


def test_wrong_arguments_are_type_errors() -> None:
    with pytest.raises(TypeError, match="item 1 is str, not bytes"):
        _rows.traces([b"", "text"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        _rows.traces(7)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="request 1: malformed"):
        _rows.traces([b"", b"\x0a\xff"])  # a length running past the end


def test_an_empty_batch_is_an_empty_block() -> None:
    block, rows = _rows.traces([])
    assert rows == 0
    assert block.startswith(bytes([len(native.TRACES_COLUMNS), 0]))


def test_encoders_kept_between_calls_start_each_batch_afresh() -> None:
    """The encoder keeps its buffers from one call to the next (no fresh pages per
    batch): whatever came before, a batch encodes to the same block, also while another
    thread encodes."""
    spans = [r.SerializeToString() for r in generate_trace_requests(40, 100, seed=3)]
    records = [r.SerializeToString() for r in generate_logs_requests(5, 100, seed=3)]
    first_spans, first_records = _rows.traces(spans), _rows.logs(records)
    with pytest.raises(ValueError, match="malformed"):
        _rows.traces([spans[0], spans[1][:-3]])  # fails with half a batch written
    assert _rows.traces(spans[:1])[1] == 100
    assert _rows.logs(records) == first_records
    assert _rows.traces(spans) == first_spans

    jobs = [(_rows.traces, spans, first_spans), (_rows.logs, records, first_records)] * 6
    with ThreadPoolExecutor(3) as pool:
        calls = [pool.submit(encode, batch) for encode, batch, _ in jobs]
        assert [c.result() for c in calls] == [first for _, _, first in jobs]


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="blocks are reused up to Python 3.12 (_rows.c)")
def test_a_block_is_written_again_only_once_nothing_else_holds_it() -> None:
    """The encoder writes a batch into its previous block when the caller has let go of
    it (no fresh pages per batch), never into a block the caller still holds, and the
    reused block reads as a fresh one: same bytes, same length, same hash."""
    big = [r.SerializeToString() for r in generate_trace_requests(30, 100, seed=5)]
    small = big[:10]
    fresh_small = bytearray(_rows.traces(small)[0])

    held, _ = _rows.traces(big)
    held_copy = bytearray(held)
    assert hash(held) == hash(bytes(held_copy))
    released, _ = _rows.traces(big)
    assert released is not held
    released_id = id(released)
    hash(released)  # CPython keeps a bytes object's hash with it
    del released  # the encoder given back last now holds the only reference

    again, _ = _rows.traces(small)
    assert id(again) == released_id  # written into the released block
    assert again == fresh_small and len(again) == len(fresh_small)
    assert hash(again) == hash(bytes(fresh_small))  # no hash left from the old contents
    for batch in (small, big, small, big):
        assert _rows.traces(batch)[0] is not held
    assert held == held_copy  # what the caller holds never changes


# --------------------------------------------------------------------------------------
# The same rows as the SQL path, in real chDB
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def both_paths(clickhouse_dir: Path) -> Iterator[tuple[Running, Running]]:
    by_sql = Running(make_config(clickhouse_dir, row_encoder="sql"))
    by_c = Running(make_config(clickhouse_dir, row_encoder="native"))
    try:
        yield by_sql, by_c
    finally:
        by_sql.close()
        by_c.close()


def _random_value(rng: random.Random, depth: int = 0) -> AnyValue:
    kind = rng.randrange(9 if depth < 3 else 7)
    if kind == 0:
        return av(string_value=rng.choice(["", "plain", "<tag>&amp;", "line\nbreak\t\x01", "é🙂", '"q"\\']))
    if kind == 1:
        return av(int_value=rng.choice([0, -1, 2**63 - 1, -(2**63), rng.randrange(-(10**12), 10**12)]))
    if kind == 2:
        return av(
            double_value=rng.choice([0.5, -0.0, 1e21, 1e-7, math.inf, math.nan, rng.uniform(-1e6, 1e6)])
        )
    if kind == 3:
        return av(bool_value=rng.random() < 0.5)
    if kind == 4:
        return av(bytes_value=rng.randbytes(rng.randrange(6)))
    if kind in (5, 6):
        return AnyValue()
    if kind == 7:
        return av(array=[_random_value(rng, depth + 1) for _ in range(rng.randrange(4))])
    keys = ["b", "a", "b", "ключ", ""]
    return av(kvlist=[KeyValue(key=rng.choice(keys), value=_random_value(rng, depth + 1)) for _ in range(3)])


def _random_attributes(rng: random.Random, n: int) -> list[KeyValue]:
    return [
        KeyValue(key=rng.choice(["k", "k2", "gen_ai.x", "", "dup"]), value=_random_value(rng))
        for _ in range(n)
    ]


def tricky_requests(seed: int) -> list[ExportTraceServiceRequest]:
    """Requests with every edge the encoding has a rule for: ids empty, all zero or of
    odd length; enums out of range; ends before starts; events and links; resources
    without or with two service names; values nested deeper than the SQL decodes."""
    rng = random.Random(seed)
    out = []
    for r in range(40):
        req = ExportTraceServiceRequest()
        for _ in range(rng.randrange(3)):
            rs = req.resource_spans.add()
            if rng.random() < 0.8:
                rs.resource.attributes.add(key="service.name").value.string_value = f"svc-{r}"
            if rng.random() < 0.2:
                rs.resource.attributes.add(key="service.name").value.int_value = 7
            rs.resource.attributes.extend(_random_attributes(rng, rng.randrange(4)))
            for _ in range(rng.randrange(3)):
                ss = rs.scope_spans.add()
                if rng.random() < 0.7:
                    ss.scope.name, ss.scope.version = "lib", rng.choice(["", "1.0"])
                for i in range(rng.randrange(8)):
                    span = ss.spans.add()
                    span.trace_id = rng.choice([b"", bytes(16), rng.randbytes(16), rng.randbytes(4)])
                    span.span_id = rng.choice([rng.randbytes(8), bytes(8), b"", rng.randbytes(3)])
                    span.parent_span_id = rng.choice([b"", rng.randbytes(8)])
                    span.trace_state = rng.choice(["", "a=1,b=2"])
                    span.name = rng.choice(["chat gpt-4o", "", "ünïcode", f"op-{i}"])
                    span.kind = rng.choice([0, 1, 2, 3, 4, 5, 6, 9, -1])  # type: ignore[assignment]
                    span.start_time_unix_nano = 1_763_700_000_000_000_000 + rng.randrange(10**12)
                    span.end_time_unix_nano = span.start_time_unix_nano + rng.randrange(-(10**6), 10**9)
                    span.attributes.extend(_random_attributes(rng, rng.randrange(6)))
                    if rng.random() < 0.3:
                        span.status.code = rng.choice([0, 1, 2, 5])  # type: ignore[assignment]
                        span.status.message = rng.choice(["", "boom"])
                    for _ in range(rng.randrange(3)):
                        event = span.events.add(name=rng.choice(["", "exception"]))
                        event.time_unix_nano = rng.randrange(2**63)
                        event.attributes.extend(_random_attributes(rng, rng.randrange(3)))
                    for _ in range(rng.randrange(3)):
                        link = span.links.add(trace_id=rng.randbytes(16), span_id=rng.choice([b"", bytes(8)]))
                        link.trace_state = rng.choice(["", "x=y"])
                        link.attributes.extend(_random_attributes(rng, rng.randrange(3)))
        out.append(req)
    return out


def tricky_log_requests(seed: int) -> list[ExportLogsServiceRequest]:
    """Log records with every edge the encoding has a rule for: no time (the observed
    time counts), severities and flags beyond a byte, bodies of every shape and depth."""
    rng = random.Random(seed)
    out = []
    for r in range(30):
        req = ExportLogsServiceRequest()
        for _ in range(rng.randrange(3)):
            rl = req.resource_logs.add(schema_url=rng.choice(["", "https://opentelemetry.io/schemas/1.26.0"]))
            if rng.random() < 0.8:
                rl.resource.attributes.add(key="service.name").value.string_value = f"svc-{r}"
            rl.resource.attributes.extend(_random_attributes(rng, rng.randrange(3)))
            for _ in range(rng.randrange(3)):
                sl = rl.scope_logs.add(schema_url=rng.choice(["", "s"]))
                if rng.random() < 0.7:
                    sl.scope.name, sl.scope.version = "logger", rng.choice(["", "2.1"])
                    sl.scope.attributes.extend(_random_attributes(rng, rng.randrange(3)))
                for _ in range(rng.randrange(8)):
                    record = sl.log_records.add()
                    record.time_unix_nano = rng.choice([0, 1_763_700_000_000_000_000 + rng.randrange(10**12)])
                    record.observed_time_unix_nano = rng.choice([0, 1_763_700_000_500_000_000])
                    record.severity_number = rng.choice([0, 9, 17, 24, 300, -5])  # type: ignore[assignment]
                    record.severity_text = rng.choice(["", "INFO", "ERROR"])
                    record.flags = rng.choice([0, 1, 257, 2**32 - 1])
                    record.trace_id = rng.choice([b"", bytes(16), rng.randbytes(16)])
                    record.span_id = rng.choice([b"", rng.randbytes(8), rng.randbytes(5)])
                    record.event_name = rng.choice(["", "gen_ai.choice"])
                    if rng.random() < 0.9:
                        record.body.CopyFrom(_random_value(rng))
                    record.attributes.extend(_random_attributes(rng, rng.randrange(5)))
        out.append(req)
    return out


def _stored(r: Running, table: str) -> list[str]:
    assert r.exporter.store is not None
    out = r.exporter.store.query(
        f"SELECT * FROM `{r.config.database}`.`{table}` FORMAT JSONEachRow", "JSONEachRow", readonly=False
    )
    return sorted(out.decode().splitlines())


def _assert_same_rows(
    by_sql: Running,
    by_c: Running,
    spans: int,
    tables: tuple[str, ...] = (TRACES, "otel_traces_trace_id_ts", "genai_calls"),
) -> None:
    for table in tables:
        a, b = _stored(by_sql, table), _stored(by_c, table)
        assert len(a) == len(b), table
        for x, y in zip(a, b, strict=True):
            assert orjson.loads(x) == orjson.loads(y), table
        assert a == b, table
    assert by_c.count(tables[0]) == spans


def test_tricky_requests_store_the_same_rows_as_sql(both_paths: tuple[Running, Running]) -> None:
    by_sql, by_c = both_paths
    by_sql.truncate()
    by_c.truncate()
    requests = [*tricky_requests(seed=3), traces_request()]
    spans = sum(len(ss.spans) for req in requests for rs in req.resource_spans for ss in rs.scope_spans)
    assert spans > 100
    by_sql.export_parts(list(requests), token="tricky")
    by_c.export_parts(list(requests), token="tricky")
    _assert_same_rows(by_sql, by_c, spans)


def test_the_genai_workload_stores_the_same_rows_as_sql(both_paths: tuple[Running, Running]) -> None:
    by_sql, by_c = both_paths
    by_sql.truncate()
    by_c.truncate()
    requests = generate_trace_requests(20, 100, seed=4)
    by_sql.export_parts(list(requests), token="workload")
    by_c.export_parts(list(requests), token="workload")
    _assert_same_rows(by_sql, by_c, 2000)
    assert by_c.count("genai_calls") > 0


def test_tricky_log_records_store_the_same_rows_as_sql(both_paths: tuple[Running, Running]) -> None:
    by_sql, by_c = both_paths
    by_sql.truncate()
    by_c.truncate()
    requests = [*tricky_log_requests(seed=9), logs_request(), *generate_logs_requests(5, 40, seed=2)]
    records = sum(len(sl.log_records) for req in requests for rl in req.resource_logs for sl in rl.scope_logs)
    assert records > 300
    by_sql.export_parts(list(requests), token="tricky-logs")
    by_c.export_parts(list(requests), token="tricky-logs")
    _assert_same_rows(by_sql, by_c, records, tables=(LOGS,))
    # TimestampTime is not in the block: ClickHouse computes it (its DEFAULT)
    assert by_c.rows(
        "SELECT count() AS n FROM `{db}`.otel_logs WHERE TimestampTime != toDateTime(Timestamp)"
    ) == [{"n": 0}]


def test_a_replayed_block_is_stored_once(both_paths: tuple[Running, Running]) -> None:
    _, by_c = both_paths
    by_c.truncate()
    requests = generate_trace_requests(3, 50, seed=8)
    by_c.export_parts(list(requests), token="replayed")
    calls = by_c.count("genai_calls")
    assert calls > 0
    by_c.export_parts(list(requests), token="replayed")
    assert by_c.count(TRACES) == 150
    assert by_c.count("genai_calls") == calls  # the views' rows are deduplicated too
    by_c.export_parts(list(requests), token="another")
    assert by_c.count(TRACES) == 300


def test_values_the_encoder_refuses_take_the_sql_path(
    both_paths: tuple[Running, Running], caplog: pytest.LogCaptureFixture
) -> None:
    """Deeper than protobuf can parse (so never from the wire, only built in-process):
    the batch is stored through SQL, which renders the value in Python."""
    _, by_c = both_paths
    by_c.truncate()
    value = AnyValue(string_value="leaf")
    for _ in range(110):
        outer = AnyValue()
        outer.array_value.values.add().CopyFrom(value)
        value = outer
    req = traces_request()
    req.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="deep").value.CopyFrom(value)
    with caplog.at_level(logging.WARNING):
        by_c.export(req)
    assert "nested deeper than 100 levels; inserting this batch through SQL" in caplog.text
    rows = by_c.rows("SELECT SpanAttributes['deep'] AS d FROM `{db}`.otel_traces WHERE d != ''")
    assert rows == [{"d": "[" * 110 + '"leaf"' + "]" * 110}]


def test_the_start_says_how_rows_are_built(
    clickhouse_dir: Path, both_paths: tuple[Running, Running], caplog: pytest.LogCaptureFixture
) -> None:
    database = both_paths[1].config.database  # its schema exists: starting is quick
    for encoder, says in (("sql", "rows built in SQL views"), ("native", "span and log rows built in C")):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            Running(make_config(clickhouse_dir, database=database, row_encoder=encoder)).close()
        assert says in caplog.text


def test_native_is_refused_without_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_rows", None)
    with pytest.raises(ValidationError, match="row_encoder: native needs the C row encoder"):
        ClickHouseConfig(row_encoder="native")
    assert not ClickHouseConfig(row_encoder="auto").native_rows
    assert not ClickHouseConfig(row_encoder="sql").native_rows


def test_a_server_insert_of_the_block_replays_into_the_engine(both_paths: tuple[Running, Running]) -> None:
    """The HTTP request clickhouse-connect builds for a server (no server runs here):
    its statement names the columns and the Native format, and replayed into the real
    engine it stores the rows."""
    _, by_c = both_paths
    by_c.truncate()
    db = by_c.config.database
    block, rows = native.trace_rows([traces_request()])
    server = ClickHouseConfig(endpoint="http://127.0.0.1:8123", database=db, query_endpoint=None)
    args = raw_insert_arguments(
        server,
        TRACES,
        block,
        {"insert_deduplication_token": "srv"},
        fmt=native.FORMAT,
        columns=native.TRACES_COLUMNS,
    )
    runtime = QueryRuntime(database=db, settings={k: str(v) for k, v in args["settings"].items()})
    plan = plan_raw_insert_request(
        args["table"], args["column_names"], args["insert_block"], args["fmt"], None, runtime, None
    )
    statement, _, payload = plan.body.partition(b"\n")
    columns = ", ".join(f"`{c}`" for c in native.TRACES_COLUMNS)
    assert statement.decode() == f"INSERT INTO `{db}`.`{TRACES}` ({columns}) FORMAT Native"
    assert payload == block
    http_settings = {k: v for k, v in plan.params.items() if k != "database"}
    store = by_c.exporter.store
    assert store is not None
    with store._session("rw") as session:  # type: ignore[attr-defined]
        for _ in range(2):  # the second is a retry: deduplicated by the token
            inserter = session.send_insert(
                statement.decode().removesuffix(" FORMAT Native")
                + " SETTINGS "
                + settings_clause(http_settings),
                "Native",
            )
            inserter.append(payload)
            inserter.finish()
    assert by_c.count(TRACES) == rows


# --------------------------------------------------------------------------------------
# Rows in the table's key order, so that ClickHouse skips its own sort
# --------------------------------------------------------------------------------------


def _block_rows(r: Running, block: bytes, path: Path, columns: str) -> list[dict[str, object]]:
    """The rows of a Native block as ClickHouse reads them, in block order."""
    path.write_bytes(block)
    assert r.exporter.store is not None
    out = r.exporter.store.query(
        f"SELECT {columns} FROM file('{path}', Native) SETTINGS max_threads = 1 FORMAT JSONEachRow",
        "JSONEachRow",
        readonly=False,
    )
    return [orjson.loads(line) for line in out.decode().splitlines()]


def test_span_rows_come_in_the_tables_key_order(both_paths: tuple[Running, Running], tmp_path: Path) -> None:
    _, by_c = both_paths
    requests = [*tricky_requests(seed=5), *generate_trace_requests(4, 50, seed=6)]
    random.Random(1).shuffle(requests)
    block, n = _rows.traces([r.SerializeToString() for r in requests])
    rows = _block_rows(by_c, block, tmp_path / "traces.native", "ServiceName, SpanName, Timestamp, SpanId")
    assert len(rows) == n > 300

    def key(row: dict[str, object]) -> tuple[bytes, bytes, str]:
        # ClickHouse compares strings as bytes; the key's last part is whole seconds
        return (str(row["ServiceName"]).encode(), str(row["SpanName"]).encode(), str(row["Timestamp"])[:19])

    keys = [key(row) for row in rows]
    assert keys == sorted(keys)
    # the input order was not already the key order: the encoder sorted it
    spans_in_input = [
        (rs, sp) for req in requests for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans
    ]
    assert [row["SpanId"] for row in rows] != [sp.span_id.hex() or "" for _, sp in spans_in_input]


def test_log_rows_come_in_the_tables_key_order(both_paths: tuple[Running, Running], tmp_path: Path) -> None:
    _, by_c = both_paths
    requests = [*tricky_log_requests(seed=4), *generate_logs_requests(4, 50, seed=3)]
    random.Random(2).shuffle(requests)
    block, n = _rows.logs([r.SerializeToString() for r in requests])
    rows = _block_rows(by_c, block, tmp_path / "logs.native", "ServiceName, Timestamp")
    assert len(rows) == n > 200
    keys = [(str(row["ServiceName"]).encode(), str(row["Timestamp"])) for row in rows]
    assert keys == sorted(keys)


def test_clickhouse_finds_the_inserted_blocks_sorted(both_paths: tuple[Running, Running]) -> None:
    _, by_c = both_paths
    assert by_c.exporter.store is not None
    by_c.truncate()

    def already_sorted() -> int:
        rows = by_c.rows(
            "SELECT sum(value) AS n FROM system.events WHERE event = 'MergeTreeDataWriterBlocksAlreadySorted'"
        )
        return int(rows[0]["n"])  # type: ignore[arg-type]

    requests = generate_trace_requests(4, 50, seed=11)
    random.Random(3).shuffle(requests)
    before = already_sorted()
    by_c.export_parts(list(requests), token="sorted-check")
    # otel_traces' block at least (the views sort their own rows by their own keys)
    assert already_sorted() > before


def test_a_wire_from_the_pipeline_stores_the_same_rows(
    both_paths: tuple[Running, Running], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts handed over with their serialization (``RequestContext.wire``: protobuf's
    or a client's bytes) are encoded from those bytes; the rows are those of the SQL path
    fed the objects. A client's encoding the encoder would read differently from the
    parser (a message split over two fields) is refused and protobuf's own serialization
    encoded instead."""
    by_sql, by_c = both_paths
    by_sql.truncate()
    requests = [*tricky_requests(seed=5), *generate_trace_requests(5, 100, seed=6)]
    spans = sum(len(ss.spans) for req in requests for rs in req.resource_spans for ss in rs.scope_spans)
    by_sql.export_parts(list(requests), token="wire")
    encoded_from: list[bool] = []  # per encoder call: whether it got bytes
    trace_rows = native.trace_rows

    def spy(parts: list[ExportTraceServiceRequest], wire: list[bytes] | None = None) -> tuple[bytes, int]:
        encoded_from.append(wire is not None)
        return trace_rows(parts, wire)

    monkeypatch.setattr(native, "trace_rows", spy)
    rng = random.Random(4)
    for token, from_client, split in (("ours", False, 0.0), ("client", True, 0.0), ("split", True, 0.3)):
        by_c.truncate()
        encoded_from.clear()
        parts = list(requests)
        wire = [p.SerializeToString() for p in parts]
        if from_client:
            wire = [client_encoding(w, "ExportTraceServiceRequest", rng, split) for w in wire]
        context = RequestContext(dedup_token=token)
        context.set_wire(parts, tuple(wire), from_client=from_client)
        by_c._run(by_c.exporter.export_parts(parts, context))
        _assert_same_rows(by_sql, by_c, spans)
        # The given bytes first; a split message makes the exporter serialize the parts.
        assert encoded_from == ([True, False] if split else [True]), token


def test_a_clients_encoding_is_encoded_as_its_parse_or_refused() -> None:
    """The encoder reads a client's bytes (fields in any order, padded lengths) exactly
    as the parser does, or refuses them: singular messages split over two fields, which
    the parser merges, are refused rather than read differently."""
    rng = random.Random(11)
    cases: list[tuple[Message, str, Any]] = [
        *((r, "ExportTraceServiceRequest", _rows.traces) for r in tricky_requests(seed=8)),
        *((r, "ExportTraceServiceRequest", _rows.traces) for r in generate_trace_requests(3, 50, seed=2)),
        *((r, "ExportLogsServiceRequest", _rows.logs) for r in tricky_log_requests(seed=8)),
        *((r, "ExportLogsServiceRequest", _rows.logs) for r in generate_logs_requests(3, 50, seed=2)),
    ]
    refused = 0
    for request, message, encode in cases:
        expected = encode([request.SerializeToString()])
        for split in (0.0, 0.2):
            client = client_encoding(request.SerializeToString(), message, rng, split)
            assert type(request).FromString(client) == request  # the same message, encoded otherwise
            try:
                got = encode([client])
            except ValueError:
                assert split  # only a split message is refused
                refused += 1
                continue
            assert got == expected
    assert 10 < refused < len(cases)
