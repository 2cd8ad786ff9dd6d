# ruff: noqa: F811  (pytest fixtures imported from test_clickhouse_support)
"""Values nested deeper than the SQL decodes, and view errors chDB does not report.

Structured GenAI data nests deeply: a ``gen_ai.choice`` log body holds
message -> tool_calls -> call -> function, and structured ``gen_ai.input.messages``
hold messages -> parts -> part. The views refuse such values; the exporter renders them
in Python (``deep_values``) and the stored text must equal what the Collector stores
(``as_string`` of ``test_clickhouse_support``, an independent implementation) and what
our SQL writes for the same value when it is shallow enough to decode.
"""

from __future__ import annotations

import math
import random
import struct

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from exporters.clickhouse import deep_values
from exporters.clickhouse.exporter import RENDER_DEEP_AHEAD
from otel_receiver.component import RetryableExportError, Signal
from tests.test_clickhouse_support import (  # noqa: F401  (fixtures)
    T0,
    TRACE_A,
    Running,
    as_string,
    av,
    clickhouse_dir,
    every_value_attributes,
    go_float,
    kv,
    module_sql_store,
    module_store,
    running,
    sql_running,
)


def _message(role: str, *parts: AnyValue) -> AnyValue:
    return av(kvlist=[kv("role", string_value=role), kv("parts", array=list(parts))])


STRUCTURED_MESSAGES = av(
    array=[
        _message(
            "user",
            av(
                kvlist=[kv("type", string_value="text"), kv("content", string_value='Book "Rome" <2 nights>')]
            ),
        ),
        _message(
            "assistant",
            av(
                kvlist=[
                    kv("type", string_value="tool_call"),
                    kv("id", string_value="call_1"),
                    kv("name", string_value="book"),
                    kv(
                        "arguments",
                        kvlist=[
                            kv("city", string_value="Rome"),
                            kv("nights", int_value=2),
                            kv("budget", double_value=1e-7),
                            kv("filters", array=[av(kvlist=[kv("stars", array=[av(int_value=4)])])]),
                        ],
                    ),
                ]
            ),
        ),
    ]
)
# The gen_ai.choice event body of the OTel OpenAI instrumentation: five levels.
CHOICE_BODY = av(
    kvlist=[
        kv("index", int_value=0),
        kv("finish_reason", string_value="tool_calls"),
        kv(
            "message",
            kvlist=[
                kv("role", string_value="assistant"),
                kv(
                    "tool_calls",
                    array=[
                        av(
                            kvlist=[
                                kv("id", string_value="call_1"),
                                kv("type", string_value="function"),
                                kv(
                                    "function",
                                    kvlist=[
                                        kv("name", string_value="get_weather"),
                                        kv("arguments", string_value='{"city": "Paris"}'),
                                    ],
                                ),
                            ]
                        )
                    ],
                ),
            ],
        ),
    ]
)


def _span(req: ExportTraceServiceRequest, name: str, attributes: list[KeyValue]) -> None:
    span = req.resource_spans[0].scope_spans[0].spans.add()
    span.trace_id, span.name = TRACE_A, name
    span.span_id = struct.pack(">Q", len(req.resource_spans[0].scope_spans[0].spans))
    span.start_time_unix_nano = span.end_time_unix_nano = T0
    span.attributes.extend(attributes)


def _traces(resource_attributes: list[KeyValue] = ()) -> ExportTraceServiceRequest:  # type: ignore[assignment]
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", string_value="agent"), *resource_attributes])
    rs.scope_spans.add()
    return req


def test_structured_genai_attributes_are_stored_as_the_collectors_json(running: Running) -> None:
    deep_resource = kv("deploy.matrix", array=[av(array=[av(string_value="eu"), av(int_value=1)])])
    req = _traces([deep_resource])
    _span(req, "chat", [kv("gen_ai.input.messages", array=list(STRUCTURED_MESSAGES.array_value.values))])
    span = req.resource_spans[0].scope_spans[0].spans[0]
    event = span.events.add()
    event.time_unix_nano, event.name = T0, "gen_ai.choice"
    event.attributes.append(kv("body", kvlist=list(CHOICE_BODY.kvlist_value.values)))
    link = span.links.add()
    link.trace_id, link.span_id = TRACE_A, b"\x09" * 8
    link.attributes.append(kv("nested", array=[av(array=[av(bool_value=True)])]))
    _span(req, "plain", [kv("shallow", array=[av(string_value="a")])])
    original = req.SerializeToString()

    running.export(req, token="deep-1")

    assert req.SerializeToString() == original, "the caller's request must not be modified"
    rows = running.rows(
        "SELECT SpanName, SpanAttributes AS a, ResourceAttributes AS r, `Events.Attributes` AS e, "
        "`Links.Attributes` AS l FROM `{db}`.otel_traces ORDER BY SpanName"
    )
    chat, plain = rows
    assert chat["a"]["gen_ai.input.messages"] == as_string(STRUCTURED_MESSAGES)
    assert chat["a"]["gen_ai.input.messages"].startswith('[{"parts":[{"content":"Book \\"Rome\\" \\u003c2')
    assert chat["r"]["deploy.matrix"] == '[["eu",1]]'
    assert chat["e"] == [{"body": as_string(CHOICE_BODY)}]
    assert chat["l"] == [{"nested": "[[true]]"}]
    assert plain["a"] == {"shallow": '["a"]'} and plain["r"] == chat["r"]


def test_deep_log_bodies_and_attributes_and_metric_points(running: Running) -> None:
    logs = ExportLogsServiceRequest()
    sl = logs.resource_logs.add().scope_logs.add()
    record = sl.log_records.add()
    record.time_unix_nano, record.event_name = T0, "gen_ai.choice"
    record.body.CopyFrom(CHOICE_BODY)
    record.attributes.append(kv("gen_ai.output.messages", array=list(STRUCTURED_MESSAGES.array_value.values)))
    record.attributes.append(kv("ok", kvlist=[kv("a", kvlist=[kv("b", int_value=1)])]))
    running.export(logs)
    got = running.rows("SELECT Body, LogAttributes AS a FROM `{db}`.otel_logs")[0]
    assert got["Body"] == as_string(CHOICE_BODY)
    assert '"function":{"arguments":"{\\"city\\": \\"Paris\\"}","name":"get_weather"}' in got["Body"]
    assert got["a"]["gen_ai.output.messages"] == as_string(STRUCTURED_MESSAGES)
    assert got["a"]["ok"] == '{"a":{"b":1}}'

    metrics = ExportMetricsServiceRequest()
    metric = metrics.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "calls"
    point = metric.gauge.data_points.add()
    point.time_unix_nano, point.as_int = T0, 3
    point.attributes.append(kv("route", kvlist=[kv("hops", array=[av(string_value="a")])]))
    running.export(metrics)
    assert running.rows("SELECT Attributes AS a FROM `{db}`.otel_metrics_gauge")[0]["a"] == {
        "route": '{"hops":["a"]}'
    }


def test_python_rendering_equals_the_collectors() -> None:
    """Python renders what the Collector stores (``as_string``), except the hex case of
    \\u00XX escapes of control characters, where it follows our SQL (next test)."""
    values = [
        a.value
        for a in every_value_attributes()
        if a.value.WhichOneof("value") in ("array_value", "kvlist_value")
    ]
    rng = random.Random(5)
    strings = [
        "".join(chr(c) for c in range(0x20, 0x80)) + "\b\f\n\r\t\x01\x19",
        "é漢字\u2028\u2029\U0001f600",
    ]
    strings += ["a/b\\c'\"", ""]
    floats = [0.0, -0.0, 1e-6, 1e-7, 9.99e-7, 0.1, 1 / 3, 123456789.125, 1e20, 1e21, 1.5e300, 5e-324, -2.5]
    floats += [struct.unpack(">d", rng.randbytes(8))[0] for _ in range(200)]
    values.append(av(array=[av(string_value=s) for s in strings]))
    values.append(
        av(array=[av(double_value=f) for f in floats if math.isfinite(f)] + [av(double_value=math.nan)])
    )
    values.append(av(kvlist=[kv(s or "empty", int_value=i) for i, s in enumerate(strings)]))
    values.append(av(kvlist=[kv("b", bytes_value=bytes(range(256))), kv("a", bool_value=False), kv("n")]))
    for v in values:
        assert deep_values.container_text(v) == as_string(v)


def test_sql_and_python_store_the_same_text(sql_running: Running) -> None:
    running = sql_running
    shapes = [
        a for a in every_value_attributes() if a.value.WhichOneof("value") in ("array_value", "kvlist_value")
    ]
    shapes.append(kv("ctl", array=[av(string_value="".join(chr(c) for c in range(0, 0x80)))]))
    shapes.append(kv("floats", array=[av(double_value=f) for f in (1e-6, 1e-7, 1e20, 1e21, 5e-324, -0.0)]))
    req = _traces()
    _span(req, "by-sql", shapes)
    running.export(req)
    stored = running.rows("SELECT SpanAttributes AS a FROM `{db}`.otel_traces")[0]["a"]
    for shape in shapes:
        assert stored[shape.key] == deep_values.container_text(shape.value), shape.key


def test_ecmascript_floats_match_go() -> None:
    rng = random.Random(11)
    samples = [struct.unpack(">d", rng.randbytes(8))[0] for _ in range(5000)]
    samples += [10.0**e for e in range(-30, 30)] + [1.5 * 10.0**e for e in range(-10, 25)]
    for f in samples:
        if math.isfinite(f):
            assert deep_values.ecmascript_float(f) == go_float(f), repr(f)


def test_depth() -> None:
    assert deep_values.depth(av(string_value="x")) == 0
    assert deep_values.depth(av(array=[])) == 1
    assert deep_values.depth(STRUCTURED_MESSAGES) == 8
    assert deep_values.depth(CHOICE_BODY) == 5
    assert deep_values.render_too_deep([_traces()]) is None


def test_a_deep_batch_renders_the_next_ones_ahead(sql_running: Running) -> None:
    running = sql_running
    exporter = running.exporter
    deep = _traces()
    _span(deep, "deep", [kv("x", array=[av(array=[av(int_value=1)])])])
    running.export(deep)
    assert exporter._render_deep_first[Signal.TRACES] == RENDER_DEEP_AHEAD
    shallow = _traces()
    _span(shallow, "shallow", [kv("x", int_value=1)])
    running.export(shallow)
    assert exporter._render_deep_first[Signal.TRACES] == RENDER_DEEP_AHEAD - 1
    assert running.count("otel_traces") == 2
    rendered = exporter._metrics.deep_values.labels("clickhouse", "traces")._value.get()
    assert rendered >= 1


def test_a_failing_view_is_an_error_not_a_silent_loss(running: Running) -> None:
    """chDB's streaming insert swallows errors raised in materialized views; the store
    must still fail the insert, and the replay (same token) must store the rows once."""
    store = running.exporter.store
    assert store is not None
    db = running.config.database
    store.execute(f"CREATE TABLE `{db}`.failing_sink (x UInt8) ENGINE = Null")
    store.execute(
        f"CREATE MATERIALIZED VIEW `{db}`.failing_mv TO `{db}`.failing_sink AS "
        f"SELECT throwIf(SpanName = 'poison', 'injected view failure') AS x FROM `{db}`.otel_traces"
    )
    req = _traces()
    _span(req, "poison", [kv("k", string_value="v")])
    try:
        with pytest.raises(RetryableExportError, match="materialized view: injected view failure"):
            running.export(req, token="poison-1")
    finally:
        store.execute(f"DROP VIEW `{db}`.failing_mv")
        store.execute(f"DROP TABLE `{db}`.failing_sink")
    running.export(req, token="poison-1")
    assert running.count("otel_traces") == 1
