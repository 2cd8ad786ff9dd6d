"""Shared pieces of the ClickHouse exporter tests (no tests here).

- an independent Python implementation of the Collector exporter's value encoding
  (``pcommon.Value.AsString``), the reference the engine-side SQL is checked against;
- hand-built OTLP requests that set every field the tables store, with every value type;
- a running exporter on an embedded chDB store, and row readers.

chDB hosts one store per process: every test uses the same directory (created once
per test session) and its own database, so tests never reopen the engine elsewhere.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from exporters.clickhouse import factory
from exporters.clickhouse.config import ClickHouseConfig
from exporters.clickhouse.exporter import ClickHouseExporter
from otel_receiver.component import Batch, ComponentSettings, RequestContext
from otel_receiver.telemetry import SelfTelemetry

# --------------------------------------------------------------------------------------
# Reference encoding (what the Collector contrib exporter writes)
# --------------------------------------------------------------------------------------

SPAN_KINDS = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"]
STATUS_CODES = ["Unset", "Ok", "Error"]


def go_float(f: float) -> str:
    """Go's strconv/encoding-json ECMAScript formatting of a float64."""
    if math.isnan(f):
        return "json: unsupported value: NaN"
    if math.isinf(f):
        return "json: unsupported value: " + ("+Inf" if f > 0 else "-Inf")
    r = repr(f)
    a = abs(f)
    if a != 0.0 and (a < 1e-6 or a >= 1e21):
        mantissa, _, exp = (r if "e" in r else f"{f:e}").partition("e")
        if mantissa.endswith(".0"):
            mantissa = mantissa[:-2]
        e = int(exp)
        return f"{mantissa}e{'-' if e < 0 else '+'}{abs(e)}"
    if "e" in r:
        r = format(Decimal(r), "f")
    return r[:-2] if r.endswith(".0") else r


def _go_json_str(s: str) -> str:
    out = orjson.dumps(s).decode()
    return (
        out.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _go_json(v: AnyValue) -> str:
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return _go_json_str(v.string_value)
    if kind == "int_value":
        return str(v.int_value)
    if kind == "double_value":
        return go_float(v.double_value) if math.isfinite(v.double_value) else "null"
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "bytes_value":
        return _go_json_str(base64.b64encode(v.bytes_value).decode())
    if kind == "array_value":
        return "[" + ",".join(_go_json(x) for x in v.array_value.values) + "]"
    if kind == "kvlist_value":
        items = {kv.key: kv.value for kv in v.kvlist_value.values}
        return "{" + ",".join(_go_json_str(k) + ":" + _go_json(items[k]) for k in sorted(items)) + "}"
    return "null"


def as_string(v: AnyValue) -> str:
    """``pcommon.Value.AsString``."""
    kind = v.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return str(v.int_value)
    if kind == "double_value":
        return go_float(v.double_value)
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return _go_json(v)


def attr_map(attrs: Any) -> dict[str, str]:
    return {kv.key: as_string(kv.value) for kv in attrs}


def hex_id(b: bytes) -> str:
    return "" if not b.strip(b"\0") else b.hex()


# --------------------------------------------------------------------------------------
# Requests that exercise every stored field
# --------------------------------------------------------------------------------------


def kv(key: str, **value: Any) -> KeyValue:
    out = KeyValue(key=key)
    if value:
        ((field, v),) = value.items()
        if field == "array":
            out.value.array_value.values.extend(v)
        elif field == "kvlist":
            out.value.kvlist_value.values.extend(v)
        else:
            setattr(out.value, field, v)
    return out


def av(**value: Any) -> AnyValue:
    return kv("x", **value).value


def every_value_attributes(prefix: str = "") -> list[KeyValue]:
    """One attribute per AnyValue shape the encoding has a rule for."""
    return [
        kv(prefix + "str", string_value='plain "quoted" \\ back/slash <b>&amp; é 漢字 \n\t'),
        kv(prefix + "str.empty", string_value=""),
        kv(prefix + "bool.true", bool_value=True),
        kv(prefix + "bool.false", bool_value=False),
        kv(prefix + "int", int_value=-9223372036854775807),
        kv(prefix + "int.zero", int_value=0),
        kv(prefix + "double", double_value=0.7),
        kv(prefix + "double.whole", double_value=2.0),
        kv(prefix + "double.small", double_value=1.5e-7),
        kv(prefix + "double.big", double_value=1e21),
        kv(prefix + "double.mid", double_value=123456789.125),
        kv(prefix + "double.negzero", double_value=-0.0),
        kv(prefix + "double.nan", double_value=float("nan")),
        kv(prefix + "double.inf", double_value=float("-inf")),
        kv(prefix + "bytes", bytes_value=b"\x00\x01\xfe\xff binary"),
        kv(prefix + "empty"),
        kv(
            prefix + "array",
            array=[
                av(string_value="a</b>&\u2028"),
                av(int_value=42),
                av(double_value=2.5),
                av(double_value=3.0),
                av(bool_value=True),
                av(bytes_value=b"\x01\x02"),
                AnyValue(),
            ],
        ),
        kv(prefix + "array.empty", array=[]),
        kv(
            prefix + "kvlist",
            kvlist=[kv("z", string_value="last"), kv("a", int_value=1), kv("m", double_value=1e-9)],
        ),
    ]


TRACE_A = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
TRACE_B = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
SPAN_1 = bytes.fromhex("b7ad6b7169203331")
SPAN_2 = bytes.fromhex("00f067aa0ba902b7")
SPAN_3 = bytes.fromhex("53995c3f42cd8ad8")
T0 = 1_763_700_000_123_456_789  # 2025-11-21T04:40:00.123456789Z


def traces_request() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.schema_url = "https://opentelemetry.io/schemas/1.26.0"
    rs.resource.attributes.extend(
        [kv("service.name", string_value="checkout"), *every_value_attributes("res.")]
    )
    ss = rs.scope_spans.add()
    ss.scope.name = "io.opentelemetry.test"
    ss.scope.version = "1.2.3"
    root = ss.spans.add()
    root.trace_id = TRACE_A
    root.span_id = SPAN_1
    root.trace_state = "vendor=value,other=1"
    root.name = "POST /checkout"
    root.kind = 2
    root.start_time_unix_nano = T0
    root.end_time_unix_nano = T0 + 1_500_000
    root.attributes.extend(every_value_attributes())
    root.status.code = 2
    root.status.message = "payment declined"
    ev = root.events.add()
    ev.time_unix_nano = T0 + 1000
    ev.name = "exception"
    ev.attributes.extend([kv("exception.type", string_value="ValueError"), kv("attempt", int_value=3)])
    ev2 = root.events.add()
    ev2.time_unix_nano = T0 + 2000
    ev2.name = "no attributes"
    link = root.links.add()
    link.trace_id = TRACE_B
    link.span_id = SPAN_3
    link.trace_state = "k=v"
    link.attributes.extend([kv("link.kind", string_value="follows"), kv("weight", double_value=0.25)])
    link2 = root.links.add()
    link2.trace_id = bytes(16)
    link2.span_id = bytes(8)
    for kind in range(7):
        child = ss.spans.add()
        child.trace_id = TRACE_A
        child.span_id = bytes([kind + 1]) * 8
        child.parent_span_id = SPAN_1
        child.name = f"child {kind}"
        child.kind = kind  # 6 is not a SpanKind: stored as ""
        child.start_time_unix_nano = T0 + 10 + kind
        child.end_time_unix_nano = T0 + 5 if kind == 4 else T0 + 100 + kind  # one ends before it starts
        child.status.code = kind % 3
    # A second resource without service.name, with a scope without name or version.
    rs2 = req.resource_spans.add()
    rs2.resource.attributes.append(kv("host.name", string_value="h1"))
    orphan = rs2.scope_spans.add().spans.add()
    orphan.trace_id = TRACE_B
    orphan.span_id = SPAN_2
    orphan.name = "orphan"
    orphan.start_time_unix_nano = T0 + 7
    orphan.end_time_unix_nano = T0 + 8
    return req


def logs_request() -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.schema_url = "https://opentelemetry.io/schemas/1.25.0"
    rl.resource.attributes.extend([kv("service.name", string_value="api"), kv("region", string_value="eu")])
    sl = rl.scope_logs.add()
    sl.schema_url = "https://opentelemetry.io/schemas/1.24.0"
    sl.scope.name = "app.logger"
    sl.scope.version = "0.9"
    sl.scope.attributes.extend([kv("scope.attr", bool_value=True), kv("scope.n", int_value=7)])
    bodies = [
        av(string_value="user logged in <ok>"),
        av(int_value=12),
        av(double_value=0.5),
        av(bool_value=False),
        av(bytes_value=b"\xffraw"),
        av(kvlist=[kv("msg", string_value="structured"), kv("code", int_value=500)]),
        av(array=[av(string_value="x"), av(int_value=1)]),
        AnyValue(),
    ]
    for i, body in enumerate(bodies):
        rec = sl.log_records.add()
        rec.time_unix_nano = 0 if i == 1 else T0 + i  # 0: the observed time is stored
        rec.observed_time_unix_nano = T0 + 1_000_000 + i
        rec.severity_number = (i * 3) % 25
        rec.severity_text = ["INFO", "WARN", "ERROR", ""][i % 4]
        rec.body.CopyFrom(body)
        rec.attributes.extend(every_value_attributes() if i == 0 else [kv("i", int_value=i)])
        rec.flags = 0x101 if i == 2 else i % 2
        if i % 2 == 0:
            rec.trace_id = TRACE_A
            rec.span_id = SPAN_1
        rec.event_name = "app.login" if i == 0 else ""
    return req


def metrics_request() -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.schema_url = "https://opentelemetry.io/schemas/1.26.0"
    rm.resource.attributes.extend([kv("service.name", string_value="llm-gw"), kv("pod", string_value="p-1")])
    sm = rm.scope_metrics.add()
    sm.schema_url = "https://opentelemetry.io/schemas/1.21.0"
    sm.scope.name = "meter.x"
    sm.scope.version = "2.0"
    sm.scope.attributes.append(kv("lib", string_value="sdk"))
    sm.scope.dropped_attributes_count = 3

    def exemplars(point: Any, n: int) -> None:
        for j in range(n):
            ex = point.exemplars.add()
            ex.filtered_attributes.append(kv("user", string_value=f"u{j}"))
            ex.time_unix_nano = T0 + 50 + j
            if j % 2:
                ex.as_int = 7 + j
            else:
                ex.as_double = 0.125 * (j + 1)
            ex.span_id = SPAN_1
            ex.trace_id = TRACE_A

    gauge = sm.metrics.add()
    gauge.name, gauge.description, gauge.unit = "temperature", "Room temperature", "Cel"
    for i in range(3):
        p = gauge.gauge.data_points.add()
        p.attributes.extend([kv("room", string_value=f"r{i}"), kv("floor", int_value=i)])
        p.start_time_unix_nano = T0
        p.time_unix_nano = T0 + 60_000_000_000 + i
        if i == 1:
            p.as_int = -4
        elif i == 2:
            pass  # no value at all: stored as 0
        else:
            p.as_double = 21.5
        p.flags = i
        exemplars(p, i)
    total = sm.metrics.add()
    total.name, total.description, total.unit = "gen_ai.client.token.usage.total", "Tokens", "{token}"
    total.sum.aggregation_temporality = 1
    total.sum.is_monotonic = True
    p = total.sum.data_points.add()
    p.attributes.append(kv("gen_ai.token.type", string_value="input"))
    p.start_time_unix_nano = T0
    p.time_unix_nano = T0 + 1
    p.as_int = 123456789012
    exemplars(p, 2)
    updown = sm.metrics.add()
    updown.name = "queue.depth"
    updown.sum.aggregation_temporality = 2
    updown.sum.is_monotonic = False
    q = updown.sum.data_points.add()
    q.time_unix_nano = T0 + 2
    q.as_double = -3.5
    hist = sm.metrics.add()
    hist.name, hist.unit = "gen_ai.client.operation.duration", "s"
    hist.histogram.aggregation_temporality = 1
    h = hist.histogram.data_points.add()
    h.attributes.append(kv("gen_ai.request.model", string_value="gpt-4o"))
    h.start_time_unix_nano = T0
    h.time_unix_nano = T0 + 3
    h.count = 10
    h.sum = 12.75
    h.bucket_counts.extend([1, 2, 3, 4])
    h.explicit_bounds.extend([0.5, 1.0, 2.5])
    h.flags = 1
    h.min = 0.1
    h.max = 4.2
    exemplars(h, 1)
    h2 = hist.histogram.data_points.add()  # no sum, min, max, buckets
    h2.time_unix_nano = T0 + 4
    h2.count = 0
    exp = sm.metrics.add()
    exp.name = "latency.exp"
    exp.exponential_histogram.aggregation_temporality = 2
    e = exp.exponential_histogram.data_points.add()
    e.attributes.append(kv("route", string_value="/chat"))
    e.start_time_unix_nano = T0
    e.time_unix_nano = T0 + 5
    e.count = 20
    e.sum = 33.0
    e.scale = -3
    e.zero_count = 2
    e.positive.offset = -2
    e.positive.bucket_counts.extend([1, 0, 5])
    e.negative.offset = 4
    e.negative.bucket_counts.extend([2])
    e.flags = 0
    e.min = -1.5
    e.max = 9.0
    exemplars(e, 2)
    summ = sm.metrics.add()
    summ.name, summ.description = "rpc.latency", "quantiles"
    s = summ.summary.data_points.add()
    s.attributes.append(kv("method", string_value="Get"))
    s.start_time_unix_nano = T0
    s.time_unix_nano = T0 + 6
    s.count = 100
    s.sum = 250.5
    for qq, vv in [(0.0, 0.1), (0.5, 2.0), (0.99, 9.75), (1.0, 12.0)]:
        qv = s.quantile_values.add()
        qv.quantile = qq
        qv.value = vv
    s.flags = 1
    return req


# --------------------------------------------------------------------------------------
# A running exporter on the shared embedded store
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def clickhouse_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clickhouse-store")


def make_config(store_dir: Path, **overrides: Any) -> ClickHouseConfig:
    values: dict[str, Any] = {
        "endpoint": f"embedded:{store_dir}",
        "database": "t_" + uuid.uuid4().hex[:12],
        "query_endpoint": None,
    }
    values.update(overrides)
    return ClickHouseConfig(**values)


def make_exporter(config: ClickHouseConfig) -> ClickHouseExporter:
    exporter = factory.create(
        config, ComponentSettings("clickhouse", SelfTelemetry(), logging.getLogger("test"))
    )
    assert isinstance(exporter, ClickHouseExporter)
    return exporter


class Running:
    """An exporter started on its own event loop (in a thread, so that its query
    endpoint keeps serving), driven synchronously by tests."""

    def __init__(self, config: ClickHouseConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="clickhouse-test", daemon=True)
        self.thread.start()
        self.exporter = make_exporter(config)
        self._run(self.exporter.start())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)

    def export(self, batch: Batch, token: str | None = None) -> None:
        self._run(self.exporter.export(batch, RequestContext(dedup_token=token)))

    def export_parts(self, parts: list[Batch], token: str | None = None) -> None:
        self._run(self.exporter.export_parts(parts, RequestContext(dedup_token=token)))

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """Rows as JSON objects; ``{db}`` in ``sql`` is the test's database."""
        assert self.exporter.store is not None
        out = self.exporter.store.query(sql.format(db=self.config.database), "JSONEachRow", readonly=False)
        return [orjson.loads(line) for line in out.splitlines() if line.strip()]

    def count(self, table: str) -> int:
        return int(self.rows(f"SELECT count() AS n FROM `{{db}}`.`{table}`")[0]["n"])

    def truncate(self) -> None:
        """Empty every table (creating the schema costs seconds; emptying it, milliseconds)."""
        assert self.exporter.store is not None
        tables = self.rows(
            "SELECT name FROM system.tables WHERE database = '{db}' AND engine LIKE '%MergeTree'"
        )
        for t in tables:
            self.exporter.store.execute(f"TRUNCATE TABLE `{self.config.database}`.`{t['name']}`")

    def close(self) -> None:
        self._run(self.exporter.shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def running_until_done(config: ClickHouseConfig) -> Iterator[Running]:
    """A module fixture's exporter: started, then shut down after the module."""
    r = Running(config)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture(scope="module")
def module_store(clickhouse_dir: Path) -> Iterator[Running]:
    yield from running_until_done(make_config(clickhouse_dir))


@pytest.fixture
def running(module_store: Running) -> Running:
    """The module's exporter with empty tables."""
    module_store.truncate()
    return module_store


@pytest.fixture(scope="module")
def module_sql_store(clickhouse_dir: Path) -> Iterator[Running]:
    """An exporter that builds span and log rows in SQL too (``row_encoder: sql``), as
    an install without the C encoder does."""
    yield from running_until_done(make_config(clickhouse_dir, row_encoder="sql"))


@pytest.fixture
def sql_running(module_sql_store: Running) -> Running:
    module_sql_store.truncate()
    return module_sql_store


# --------------------------------------------------------------------------------------
# Column-by-column comparison of stored rows with the requests they came from
# --------------------------------------------------------------------------------------

NS = "toUnixTimestamp64Nano"


class Reader(Protocol):
    def rows(self, sql: str) -> list[dict[str, Any]]: ...


def _compare(rows: list[dict[str, Any]], expected: list[dict[str, Any]], label: str) -> None:
    assert len(rows) == len(expected), f"{label}: {len(rows)} rows, expected {len(expected)}"
    for got, want in zip(rows, expected, strict=True):
        for column, value in want.items():
            assert got[column] == value, f"{label}: column {column} of {want}"


def check_traces(reader: Reader, requests: list[ExportTraceServiceRequest], where: str = "1") -> int:
    """Every otel_traces column of every span of ``requests``; returns the span count."""
    expected: list[dict[str, Any]] = []
    for req in requests:
        for rs in req.resource_spans:
            res = attr_map(rs.resource.attributes)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    expected.append(
                        {
                            "ts": span.start_time_unix_nano,
                            "TraceId": hex_id(span.trace_id),
                            "SpanId": hex_id(span.span_id),
                            "ParentSpanId": hex_id(span.parent_span_id),
                            "TraceState": span.trace_state,
                            "SpanName": span.name,
                            "SpanKind": SPAN_KINDS[span.kind] if span.kind < 6 else "",
                            "ServiceName": res.get("service.name", ""),
                            "ResourceAttributes": res,
                            "ScopeName": ss.scope.name,
                            "ScopeVersion": ss.scope.version,
                            "SpanAttributes": attr_map(span.attributes),
                            "Duration": max(span.end_time_unix_nano - span.start_time_unix_nano, 0),
                            "StatusCode": STATUS_CODES[span.status.code],
                            "StatusMessage": span.status.message,
                            "ev_ts": [e.time_unix_nano for e in span.events],
                            "Events.Name": [e.name for e in span.events],
                            "Events.Attributes": [attr_map(e.attributes) for e in span.events],
                            "Links.TraceId": [hex_id(link.trace_id) for link in span.links],
                            "Links.SpanId": [hex_id(link.span_id) for link in span.links],
                            "Links.TraceState": [link.trace_state for link in span.links],
                            "Links.Attributes": [attr_map(link.attributes) for link in span.links],
                        }
                    )
    expected.sort(key=lambda r: (r["ts"], r["SpanId"], r["TraceId"]))
    rows = reader.rows(
        f"SELECT *, {NS}(Timestamp) AS ts, arrayMap(t -> {NS}(t), `Events.Timestamp`) AS ev_ts "
        f"FROM `{{db}}`.otel_traces WHERE {where} ORDER BY ts, SpanId, TraceId"
    )
    _compare(rows, expected, "otel_traces")
    return len(rows)


def check_logs(reader: Reader, requests: list[ExportLogsServiceRequest], where: str = "1") -> int:
    """Every otel_logs column of every record of ``requests``; returns the record count."""
    expected: list[dict[str, Any]] = []
    for req in requests:
        for rl in req.resource_logs:
            res = attr_map(rl.resource.attributes)
            for sl in rl.scope_logs:
                for rec in sl.log_records:
                    ts = rec.time_unix_nano or rec.observed_time_unix_nano
                    expected.append(
                        {
                            "ts": ts,
                            "tt": ts // 10**9,
                            "TraceId": hex_id(rec.trace_id),
                            "SpanId": hex_id(rec.span_id),
                            "TraceFlags": rec.flags & 0xFF,
                            "SeverityText": rec.severity_text,
                            "SeverityNumber": rec.severity_number,
                            "ServiceName": res.get("service.name", ""),
                            "Body": as_string(rec.body),
                            "ResourceSchemaUrl": rl.schema_url,
                            "ResourceAttributes": res,
                            "ScopeSchemaUrl": sl.schema_url,
                            "ScopeName": sl.scope.name,
                            "ScopeVersion": sl.scope.version,
                            "ScopeAttributes": attr_map(sl.scope.attributes),
                            "LogAttributes": attr_map(rec.attributes),
                            "EventName": rec.event_name,
                        }
                    )
    expected.sort(key=lambda r: (r["ts"], r["Body"]))
    rows = reader.rows(
        f"SELECT *, {NS}(Timestamp) AS ts, toUnixTimestamp(TimestampTime) AS tt "
        f"FROM `{{db}}`.otel_logs WHERE {where} ORDER BY ts, Body"
    )
    _compare(rows, expected, "otel_logs")
    return len(rows)


def _exemplar_columns(point: Any) -> dict[str, Any]:
    return {
        "Exemplars.FilteredAttributes": [attr_map(e.filtered_attributes) for e in point.exemplars],
        "ex_ts": [e.time_unix_nano for e in point.exemplars],
        "Exemplars.Value": [
            float(e.as_int) if e.WhichOneof("value") == "as_int" else e.as_double for e in point.exemplars
        ],
        "Exemplars.SpanId": [hex_id(e.span_id) for e in point.exemplars],
        "Exemplars.TraceId": [hex_id(e.trace_id) for e in point.exemplars],
    }


def _point_columns(kind: str, data: Any, point: Any) -> dict[str, Any]:
    if kind in ("gauge", "sum"):
        which = point.WhichOneof("value")
        out = {
            "Value": float(point.as_int) if which == "as_int" else point.as_double,
            **_exemplar_columns(point),
        }
        if kind == "sum":
            out["AggregationTemporality"] = data.aggregation_temporality
            out["IsMonotonic"] = data.is_monotonic
        return out
    if kind == "summary":
        return {
            "Count": point.count,
            "Sum": point.sum,
            "ValueAtQuantiles.Quantile": [q.quantile for q in point.quantile_values],
            "ValueAtQuantiles.Value": [q.value for q in point.quantile_values],
        }
    out = {
        "Count": point.count,
        "Sum": point.sum,
        "Min": point.min,
        "Max": point.max,
        "AggregationTemporality": data.aggregation_temporality,
        **_exemplar_columns(point),
    }
    if kind == "histogram":
        out["BucketCounts"] = list(point.bucket_counts)
        out["ExplicitBounds"] = list(point.explicit_bounds)
    else:
        out.update(
            {
                "Scale": point.scale,
                "ZeroCount": point.zero_count,
                "PositiveOffset": point.positive.offset,
                "PositiveBucketCounts": list(point.positive.bucket_counts),
                "NegativeOffset": point.negative.offset,
                "NegativeBucketCounts": list(point.negative.bucket_counts),
            }
        )
    return out


def check_metrics(
    reader: Reader, requests: list[ExportMetricsServiceRequest], where: str = "1"
) -> dict[str, int]:
    """Every column of every data point of ``requests``; returns points per metric kind."""
    expected: dict[str, list[dict[str, Any]]] = {}
    for req in requests:
        for rm in req.resource_metrics:
            res = attr_map(rm.resource.attributes)
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    if kind is None:
                        continue
                    data = getattr(metric, kind)
                    for point in data.data_points:
                        expected.setdefault(kind, []).append(
                            {
                                "ResourceAttributes": res,
                                "ResourceSchemaUrl": rm.schema_url,
                                "ScopeName": sm.scope.name,
                                "ScopeVersion": sm.scope.version,
                                "ScopeAttributes": attr_map(sm.scope.attributes),
                                "ScopeDroppedAttrCount": sm.scope.dropped_attributes_count,
                                "ScopeSchemaUrl": sm.schema_url,
                                "ServiceName": res.get("service.name", ""),
                                "MetricName": metric.name,
                                "MetricDescription": metric.description,
                                "MetricUnit": metric.unit,
                                "Attributes": attr_map(point.attributes),
                                "st": point.start_time_unix_nano,
                                "t": point.time_unix_nano,
                                "Flags": point.flags,
                                **_point_columns(kind, data, point),
                            }
                        )
    counts: dict[str, int] = {}
    for kind, want in expected.items():
        want.sort(
            key=lambda r: (
                r["MetricName"],
                r["t"],
                orjson.dumps(r["Attributes"], option=orjson.OPT_SORT_KEYS),
            )
        )
        exemplar_ts = f", arrayMap(x -> {NS}(x), `Exemplars.TimeUnix`) AS ex_ts" if kind != "summary" else ""
        rows = reader.rows(
            f"SELECT *, {NS}(StartTimeUnix) AS st, {NS}(TimeUnix) AS t{exemplar_ts} "
            f"FROM `{{db}}`.otel_metrics_{kind} WHERE {where} ORDER BY MetricName, t"
        )
        rows.sort(
            key=lambda r: (
                r["MetricName"],
                r["t"],
                orjson.dumps(r["Attributes"], option=orjson.OPT_SORT_KEYS),
            )
        )
        _compare(rows, want, f"otel_metrics_{kind}")
        counts[kind] = len(rows)
    return counts
