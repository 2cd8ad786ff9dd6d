"""Column building in SQL: from a decoded OTLP request (``wire.py``) to table rows.

Each ``*_select`` function returns the SELECT that turns rows of a signal's input
table (one row per request, nested arrays of resources, scopes and items) into rows
of the Collector contrib exporter's tables, with its value encoding
(``pcommon.Value.AsString``):

- ids as lowercase hex, "" when empty or all zero;
- SpanKind ``Unspecified``/``Internal``/``Server``/``Client``/``Producer``/``Consumer``,
  StatusCode ``Unset``/``Ok``/``Error``;
- attribute values as strings: ints in decimal, doubles in the ECMAScript format Go
  uses (``0.7``, ``2``, ``1e-7``, ``1e+21``), bools ``true``/``false``, bytes in
  base64, arrays and maps as JSON (map keys sorted, HTML characters escaped as Go does);
- ``Duration`` = end - start in ns (0 when the end precedes the start, instead of
  wrapping around in UInt64).

The same SELECTs are used by the materialized views of the embedded store and of a
ClickHouse server or cluster, so both paths write identical rows.
"""

from __future__ import annotations

import zlib
from typing import Final

from semconv import attributes as sc

from . import wire
from .sql import sql_literal


def _var(prefix: str, over: str = "") -> str:
    # Nested lambdas need distinct parameter names; deriving them from the expression
    # they range over keeps the generated SQL identical from run to run.
    return f"{prefix}_{zlib.crc32(over.encode()) & 0xFFFFF:x}"


def _finite_float_text(d: str) -> str:
    # ClickHouse prints the shortest round-trip form as Go does, except the sign of
    # big exponents: 1e21 -> 1e+21.
    return f"if(abs({d}) >= 1e21, replaceOne(toString({d}), 'e', 'e+'), toString({d}))"


def float_text(d: str) -> str:
    """A Float64 as Go's ``pcommon.Value.AsString`` prints it."""
    return (
        f"if(isFinite({d}), {_finite_float_text(d)}, "
        f"concat('json: unsupported value: ', if(isNaN({d}), 'NaN', if({d} > 0, '+Inf', '-Inf'))))"
    )


def go_json_escapes(json_text: str) -> str:
    """Rewrite ClickHouse JSON text the way Go's encoding/json writes it.

    Go leaves ``/`` alone and escapes ``<``, ``>``, ``&``, U+2028 and U+2029. None
    of these is JSON syntax, so the rewrite runs once over a whole document rather
    than per string: a smaller expression, which ClickHouse analyses on every insert.
    """
    return (
        f"replaceAll(replaceAll(replaceAll(replaceAll(replaceAll(replaceAll({json_text}, "
        "'\\\\/', '/'), '<', '\\\\u003c'), '>', '\\\\u003e'), '&', '\\\\u0026'), "
        # U+2028 and U+2029 spelled as their UTF-8 bytes: SQL literals have no \\u escape
        "'\\xE2\\x80\\xA8', '\\\\u2028'), '\\xE2\\x80\\xA9', '\\\\u2029')"
    )


# The message of the insert error that sends a batch through ``deep_values``.
DEEPER_THAN_DECODED: Final = "otel-receiver: value nested deeper than the decoded levels"


def _json(e: str, level: int) -> str:
    """JSON text (ClickHouse's escaping) of a ``Value<level>`` tuple expression."""
    if level == 0:
        # An array or map here is nested deeper than the decoded levels and arrives as
        # raw protobuf bytes, which SQL cannot render: the insert fails, before any row
        # is written, with DEEPER_THAN_DECODED, and the exporter renders those values in
        # Python and inserts again (``deep_values.py``).
        nested = (
            f"{e}.kind = 7, toJSONString(base64Encode({e}.bytes_value)), "
            f"{e}.kind >= 5, toString(throwIf({e}.kind IN (5, 6), {sql_literal(DEEPER_THAN_DECODED)})), "
        )
    else:
        nested = (
            f"{e}.kind = 7, toJSONString(base64Encode({e}.bytes_value)), "
            f"{e}.kind >= 5, {_json_container(e, level)}, "
        )
    return (
        f"multiIf({e}.kind = 1, toJSONString({e}.string_value), "
        f"{e}.kind = 3, toString({e}.int_value), "
        f"{e}.kind = 4, if(isFinite({e}.double_value), {_finite_float_text(f'{e}.double_value')}, 'null'), "
        f"{e}.kind = 2, toString({e}.bool_value), "
        f"{nested}'null')"
    )


def _json_container(v: str, level: int) -> str:
    """JSON text of the array (kind 5) or map (kind 6) held by a ``Value<level>``.

    Arrays and maps share one conversion of their elements: an array's elements become
    ("", element) pairs, a map's entries (key, value) pairs sorted by key, as Go marshals
    maps. Writing the element conversion once per level, not once per container kind,
    keeps the SQL linear in the depth instead of doubling per level: ClickHouse analyses
    the views' SQL on every insert, and that analysis is most of a small insert's cost.
    """
    x, p, k, q = (_var(name, v) for name in ("x", "p", "k", "q"))
    pairs = (
        f"if({v}.kind = 5, arrayMap({x} -> ('', {x}), {v}.array_value.values), "
        f"arraySort({k} -> {k}.1, arrayMap({p} -> ({p}.key, {p}.value), {v}.kvlist_value.values)))"
    )
    items = (
        f"arrayMap({q} -> concat(if({v}.kind = 5, '', concat(toJSONString({q}.1), ':')), "
        f"{_json(f'{q}.2', level - 1)}), {pairs})"
    )
    return (
        f"concat(if({v}.kind = 5, '[', '{{'), arrayStringConcat({items}, ','), if({v}.kind = 5, ']', '}}'))"
    )


def value_text(v: str, level: int = wire.ATTRIBUTE_LEVEL) -> str:
    """``pcommon.Value.AsString`` of a ``Value<level>`` tuple expression."""
    return (
        f"multiIf({v}.kind = 1, {v}.string_value, "
        f"{v}.kind = 3, toString({v}.int_value), "
        f"{v}.kind = 4, {float_text(f'{v}.double_value')}, "
        f"{v}.kind = 2, toString({v}.bool_value), "
        f"{v}.kind = 7, base64Encode({v}.bytes_value), "
        f"{v}.kind >= 5, {go_json_escapes(_json_container(v, level))}, "
        "'')"
    )


def attr_map(attrs: str, level: int = wire.ATTRIBUTE_LEVEL) -> str:
    """Map(String, String) of a KeyValue array expression."""
    a = _var("a", attrs)
    b = _var("b", attrs)
    return (
        f"mapFromArrays(arrayMap({a} -> {a}.key, {attrs}), "
        f"arrayMap({b} -> {value_text(f'{b}.value', level)}, {attrs}))"
    )


def hex_id(b: str, size: int) -> str:
    zero = "\\0" * size
    return f"if({b} = '' OR {b} = '{zero}', '', lower(hex({b})))"


def ts(nanos: str) -> str:
    return f"fromUnixTimestamp64Nano(toInt64({nanos}))"


def _number(p: str) -> str:
    # oneof field 6 is as_int; an unset value stays 0 as in the Collector
    return f"if({p}.kind = 6, toFloat64({p}.as_int), {p}.as_double)"


SERVICE_NAME_KEY: Final = sql_literal(sc.SERVICE_NAME)
SPAN_KINDS: Final = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
STATUS_CODES: Final = ("Unset", "Ok", "Error")


def _enum_text(value: str, names: tuple[str, ...]) -> str:
    arr = "[" + ", ".join(sql_literal(n) for n in names) + "]"
    return f"if({value} >= 0 AND {value} < {len(names)}, {arr}[{value} + 1], '')"


def traces_select(source: str) -> str:
    """Rows of ``otel_traces`` from the traces input table ``source``.

    One ARRAY JOIN over (resource attributes, scope name, scope version, span) tuples:
    the resource map is built once per resource, and the expression stays smaller
    than with three nested joins (ClickHouse analyses it on every insert).
    """
    ev = [f"ev{i}" for i in range(3)]
    ln = [f"ln{i}" for i in range(4)]
    return f"""SELECT
    {ts("row.4.start_time_unix_nano")} AS Timestamp,
    {hex_id("row.4.trace_id", 16)} AS TraceId,
    {hex_id("row.4.span_id", 8)} AS SpanId,
    {hex_id("row.4.parent_span_id", 8)} AS ParentSpanId,
    row.4.trace_state AS TraceState,
    row.4.name AS SpanName,
    {_enum_text("row.4.kind", SPAN_KINDS)} AS SpanKind,
    row.1[{SERVICE_NAME_KEY}] AS ServiceName,
    row.1 AS ResourceAttributes,
    row.2 AS ScopeName,
    row.3 AS ScopeVersion,
    {attr_map("row.4.attributes")} AS SpanAttributes,
    if(row.4.end_time_unix_nano > row.4.start_time_unix_nano,
       row.4.end_time_unix_nano - row.4.start_time_unix_nano, 0) AS Duration,
    {_enum_text("row.4.status.code", STATUS_CODES)} AS StatusCode,
    row.4.status.message AS StatusMessage,
    arrayMap({ev[0]} -> {ts(f"{ev[0]}.time_unix_nano")}, row.4.events) AS `Events.Timestamp`,
    arrayMap({ev[1]} -> {ev[1]}.name, row.4.events) AS `Events.Name`,
    arrayMap({ev[2]} -> {attr_map(f"{ev[2]}.attributes")}, row.4.events) AS `Events.Attributes`,
    arrayMap({ln[0]} -> {hex_id(f"{ln[0]}.trace_id", 16)}, row.4.links) AS `Links.TraceId`,
    arrayMap({ln[1]} -> {hex_id(f"{ln[1]}.span_id", 8)}, row.4.links) AS `Links.SpanId`,
    arrayMap({ln[2]} -> {ln[2]}.trace_state, row.4.links) AS `Links.TraceState`,
    arrayMap({ln[3]} -> {attr_map(f"{ln[3]}.attributes")}, row.4.links) AS `Links.Attributes`
FROM {source}
ARRAY JOIN arrayFlatten(arrayMap(r -> arrayFlatten(arrayMap(s -> arrayMap(
    x -> ({attr_map("r.resource.attributes")}, s.scope.name, s.scope.version, x),
    s.spans), r.scope_spans)), resource_spans)) AS row"""


def logs_select(source: str) -> str:
    """Rows of ``otel_logs`` from the logs input table ``source``."""
    r = "r"
    s = "s"
    return f"""SELECT
    {ts("if(lr.time_unix_nano != 0, lr.time_unix_nano, lr.observed_time_unix_nano)")} AS Timestamp,
    {hex_id("lr.trace_id", 16)} AS TraceId,
    {hex_id("lr.span_id", 8)} AS SpanId,
    toUInt8(bitAnd(lr.flags, 255)) AS TraceFlags,
    lr.severity_text AS SeverityText,
    toUInt8(bitAnd(lr.severity_number, 255)) AS SeverityNumber,
    rl.1[{SERVICE_NAME_KEY}] AS ServiceName,
    {value_text("lr.body", wire.LOG_BODY_LEVEL)} AS Body,
    rl.3 AS ResourceSchemaUrl,
    rl.1 AS ResourceAttributes,
    sl.3 AS ScopeSchemaUrl,
    sl.4 AS ScopeName,
    sl.5 AS ScopeVersion,
    sl.1 AS ScopeAttributes,
    {attr_map("lr.attributes", wire.LOG_ATTRIBUTE_LEVEL)} AS LogAttributes,
    lr.event_name AS EventName
FROM {source}
ARRAY JOIN arrayMap({r} -> ({attr_map(f"{r}.resource.attributes")}, {r}.scope_logs, {r}.schema_url),
                    resource_logs) AS rl
ARRAY JOIN arrayMap({s} -> ({attr_map(f"{s}.scope.attributes")}, {s}.log_records, {s}.schema_url,
                            {s}.scope.name, {s}.scope.version), rl.2) AS sl
ARRAY JOIN sl.2 AS lr"""


METRIC_KINDS: Final = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


def _exemplar_columns() -> str:
    x = [f"x{i}" for i in range(5)]
    return f"""arrayMap({x[0]} -> {attr_map(f"{x[0]}.filtered_attributes")}, dp.exemplars)
        AS `Exemplars.FilteredAttributes`,
    arrayMap({x[1]} -> {ts(f"{x[1]}.time_unix_nano")}, dp.exemplars) AS `Exemplars.TimeUnix`,
    arrayMap({x[2]} -> {_number(x[2])}, dp.exemplars) AS `Exemplars.Value`,
    arrayMap({x[3]} -> {hex_id(f"{x[3]}.span_id", 8)}, dp.exemplars) AS `Exemplars.SpanId`,
    arrayMap({x[4]} -> {hex_id(f"{x[4]}.trace_id", 16)}, dp.exemplars) AS `Exemplars.TraceId`"""


def metrics_select(source: str, kind: str) -> str:
    """Rows of ``otel_metrics_<kind>`` from the metrics input table ``source``."""
    r = "r"
    s = "s"
    if kind in ("gauge", "sum"):
        specific = f"""{_number("dp")} AS Value,
    dp.flags AS Flags,
    {_exemplar_columns()}"""
        if kind == "sum":
            specific += """,
    m.sum.aggregation_temporality AS AggregationTemporality,
    m.sum.is_monotonic AS IsMonotonic"""
    elif kind == "histogram":
        specific = f"""dp.count AS Count,
    dp.sum AS Sum,
    dp.bucket_counts AS BucketCounts,
    dp.explicit_bounds AS ExplicitBounds,
    {_exemplar_columns()},
    dp.flags AS Flags,
    dp.min AS Min,
    dp.max AS Max,
    m.histogram.aggregation_temporality AS AggregationTemporality"""
    elif kind == "exponential_histogram":
        specific = f"""dp.count AS Count,
    dp.sum AS Sum,
    dp.scale AS Scale,
    dp.zero_count AS ZeroCount,
    dp.positive.offset AS PositiveOffset,
    dp.positive.bucket_counts AS PositiveBucketCounts,
    dp.negative.offset AS NegativeOffset,
    dp.negative.bucket_counts AS NegativeBucketCounts,
    {_exemplar_columns()},
    dp.flags AS Flags,
    dp.min AS Min,
    dp.max AS Max,
    m.exponential_histogram.aggregation_temporality AS AggregationTemporality"""
    elif kind == "summary":
        q = ["q0", "q1"]
        specific = f"""dp.count AS Count,
    dp.sum AS Sum,
    arrayMap({q[0]} -> {q[0]}.quantile, dp.quantile_values) AS `ValueAtQuantiles.Quantile`,
    arrayMap({q[1]} -> {q[1]}.value, dp.quantile_values) AS `ValueAtQuantiles.Value`,
    dp.flags AS Flags"""
    else:
        raise ValueError(f"unknown metric kind {kind!r}")
    return f"""SELECT
    rm.1 AS ResourceAttributes,
    rm.3 AS ResourceSchemaUrl,
    sm.4 AS ScopeName,
    sm.5 AS ScopeVersion,
    sm.1 AS ScopeAttributes,
    sm.6 AS ScopeDroppedAttrCount,
    sm.3 AS ScopeSchemaUrl,
    rm.1[{SERVICE_NAME_KEY}] AS ServiceName,
    m.name AS MetricName,
    m.description AS MetricDescription,
    m.unit AS MetricUnit,
    {attr_map("dp.attributes")} AS Attributes,
    {ts("dp.start_time_unix_nano")} AS StartTimeUnix,
    {ts("dp.time_unix_nano")} AS TimeUnix,
    {specific}
FROM {source}
ARRAY JOIN arrayMap({r} -> ({attr_map(f"{r}.resource.attributes")}, {r}.scope_metrics, {r}.schema_url),
                    resource_metrics) AS rm
ARRAY JOIN arrayMap({s} -> ({attr_map(f"{s}.scope.attributes")}, {s}.metrics, {s}.schema_url,
                            {s}.scope.name, {s}.scope.version, {s}.scope.dropped_attributes_count),
                    rm.2) AS sm
ARRAY JOIN sm.2 AS m
ARRAY JOIN m.{kind}.data_points AS dp"""


# Decimal(18, 9) holds less than 1e9: a larger cost (a garbage token count, a client's
# bogus figure) would fail the whole insert with an overflow, and every retry with it.
COST_LIMIT_USD: Final = 1_000_000_000


def cost_column(text: str) -> str:
    """``CostUsd`` from the attribute text: rounded to 9 places, 0 when not a number or
    out of the column's range (the span keeps the original attribute)."""
    d = f"toDecimal128OrZero({text}, 18)"
    return f"CAST(if(abs({d}) < {COST_LIMIT_USD}, round({d}, 9), 0) AS Decimal(18, 9))"


def genai_select(traces_table: str) -> str:
    """Rows of ``genai_calls`` from ``otel_traces`` rows: one per GenAI span.

    A span is a GenAI call when it names a GenAI operation or provider; the fields
    are the attributes the processors write (names from ``semconv``). Token columns
    are 0 on agent/tool spans that aggregate their children (the rule of genai_cost
    and of the Prometheus token histogram), so sums over the table count each once.
    """

    def attr(name: str) -> str:
        return f"SpanAttributes[{sql_literal(name)}]"

    # An agent or tool span (not a CLIENT call to a remote agent) that our genai_cost
    # left unpriced sums its children's usage: its tokens would be counted twice.
    agents = ", ".join(sql_literal(op) for op in sorted(sc.AGENT_OPERATIONS))
    rollup = (
        f"{attr(sc.GEN_AI_OPERATION_NAME)} IN ({agents}) AND SpanKind != 'Client' "
        f"AND {attr(sc.GEN_AI_USAGE_COST)} = ''"
    )

    def tokens(name: str) -> str:
        return f"if({rollup}, 0, toUInt64OrZero({attr(name)}))"

    kinds = attr(sc.ANOMALY_KINDS)
    return f"""SELECT
    Timestamp,
    TraceId,
    SpanId,
    ServiceName,
    {attr(sc.AUDIT_TENANT_ID)} AS TenantId,
    {attr(sc.GEN_AI_PROVIDER_NAME)} AS Provider,
    {attr(sc.GEN_AI_REQUEST_MODEL)} AS RequestModel,
    {attr(sc.GEN_AI_RESPONSE_MODEL)} AS ResponseModel,
    {attr(sc.GEN_AI_OPERATION_NAME)} AS Operation,
    {tokens(sc.GEN_AI_USAGE_INPUT_TOKENS)} AS InputTokens,
    {tokens(sc.GEN_AI_USAGE_OUTPUT_TOKENS)} AS OutputTokens,
    {tokens(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)} AS CacheReadTokens,
    {tokens(sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)} AS CacheWriteTokens,
    {tokens(sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)} AS ReasoningTokens,
    {cost_column(attr(sc.GEN_AI_USAGE_COST))} AS CostUsd,
    Duration AS DurationNs,
    multiIf({attr(sc.ERROR_TYPE)} != '', {attr(sc.ERROR_TYPE)},
            StatusCode = 'Error', '_OTHER', '') AS ErrorType,
    multiIf(startsWith({kinds}, '['), JSONExtract({kinds}, 'Array(String)'),
            {kinds} != '', [{kinds}], []) AS AnomalyKinds
FROM {traces_table}
WHERE {attr(sc.GEN_AI_OPERATION_NAME)} != '' OR {attr(sc.GEN_AI_PROVIDER_NAME)} != ''"""
