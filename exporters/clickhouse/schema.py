"""DDL of the store: the Collector contrib exporter's tables plus ours.

``otel_traces``, ``otel_traces_trace_id_ts`` (+ its materialized view), ``otel_logs``
and ``otel_metrics_{gauge,sum,histogram,exponential_histogram,summary}`` have the
column names, types and ordering keys of the OpenTelemetry Collector contrib
ClickHouse exporter, so Grafana's ClickHouse plugin and existing queries work
unchanged. Our additions: ``genai_calls`` (one typed row per GenAI span, filled by a
materialized view on ``otel_traces``), ``audit_log`` (append-only, hash-chained), and
the insert paths: ``Null`` input tables (``otlp_traces_in_<fp>``, ``otlp_logs_in_<fp>``,
``otlp_metrics_<kind>_in_<fp>``) that receive serialized OTLP requests, and materialized
views (``otlp_*_mv_<fp>``) that turn them into table rows (``columns.py``). ``<fp>`` is a
fingerprint of the path's SQL, so a release that changes how requests become rows
creates a new path next to the old one instead of keeping the old views.

Every MergeTree table keeps a deduplication window, so replaying an insert with the
same ``insert_deduplication_token`` stores nothing twice, also through the views.

With ``cluster``, every statement runs ``ON CLUSTER``; data lives in
``<name>_local`` ReplicatedMergeTree tables, and ``<name>`` is a Distributed table
over them, so queries and Grafana keep using the usual names. Distributed tables
shard by a deterministic key (a replayed block lands on the same shard and is
deduplicated there); traces by ``TraceId`` so that a trace stays on one shard.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from exporters.clickhouse import columns, wire
from otel_receiver.component import Batch

TRACES: Final = "otel_traces"
TRACE_ID_TS: Final = "otel_traces_trace_id_ts"
TRACE_ID_TS_MV: Final = "otel_traces_trace_id_ts_mv"
LOGS: Final = "otel_logs"
METRICS: Final[dict[str, str]] = {kind: f"otel_metrics_{kind}" for kind in columns.METRIC_KINDS}
GENAI_CALLS: Final = "genai_calls"
GENAI_CALLS_MV: Final = "genai_calls_mv"
AUDIT_LOG: Final = "audit_log"


@dataclass(frozen=True)
class InsertPath:
    """A ``Null`` input table for serialized requests and the view that turns them into
    rows of ``target``; they store nothing."""

    table: str
    view: str
    target: str
    structure: str
    select: Callable[[str], str]


def insert_path(name: str, target: str, structure: str, select: Callable[[str], str]) -> InsertPath:
    # The names carry a fingerprint of the path's SQL. A schema step only creates what is
    # missing, so without it an upgraded receiver would keep inserting through the views
    # of the release that created the store; with it, it creates its own path beside the
    # old one, which older receivers of a rolling upgrade keep using until they stop.
    sql = "\n".join((structure, target, select("`database`.`input`")))
    fingerprint = hashlib.sha256(sql.encode()).hexdigest()[:8]
    return InsertPath(
        f"otlp_{name}_in_{fingerprint}", f"otlp_{name}_mv_{fingerprint}", target, structure, select
    )


TRACES_PATH: Final = insert_path("traces", TRACES, wire.TRACES_INPUT, columns.traces_select)
LOGS_PATH: Final = insert_path("logs", LOGS, wire.LOGS_INPUT, columns.logs_select)
# One metrics path per kind: an insert only pays for the views of the kinds it holds
# (ClickHouse analyses every view of the table inserted into, ~50 ms of CPU each).
METRICS_PATHS: Final[dict[str, InsertPath]] = {
    kind: insert_path(
        f"metrics_{kind}",
        METRICS[kind],
        wire.METRICS_INPUT,
        functools.partial(columns.metrics_select, kind=kind),
    )
    for kind in columns.METRIC_KINDS
}
INSERT_PATHS: Final = (TRACES_PATH, LOGS_PATH, *METRICS_PATHS.values())
TRACES_INPUT: Final = TRACES_PATH.table
LOGS_INPUT: Final = LOGS_PATH.table
METRICS_INPUT: Final[dict[str, str]] = {kind: path.table for kind, path in METRICS_PATHS.items()}
# Insert-path objects of any release, the unversioned names of the first ones included.
_ANY_INSERT_PATH = re.compile(r"^otlp_(?:traces|logs|metrics_[a-z_]+?)_(in|mv)(?:_[0-9a-f]{8})?$")


def _is_view(insert_path_object: str) -> bool:
    m = _ANY_INSERT_PATH.match(insert_path_object)
    return m is not None and m.group(1) == "mv"


DEDUP_WINDOW: Final = 1000  # inserts remembered per table; we insert about once a second
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_TTL_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_TTL = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_ttl(text: str) -> int:
    """Seconds of a retention like ``72h`` or ``30d`` (0 = keep forever)."""
    if text.strip() in ("0", ""):
        return 0
    m = _TTL.match(text)
    if m is None:
        raise ValueError(f"ttl {text!r}: expected a number and a unit among s, m, h, d, w (e.g. 72h, 30d)")
    return int(m.group(1)) * _TTL_UNITS[m.group(2)]


def ttl_clause(seconds: int, time_column: str) -> str:
    """The TTL clause the Collector exporter generates: the coarsest exact unit."""
    if seconds <= 0:
        return ""
    for unit, size in (("Day", 86400), ("Hour", 3600), ("Minute", 60)):
        if seconds % size == 0:
            return f"TTL {time_column} + toInterval{unit}({seconds // size})"
    return f"TTL {time_column} + toIntervalSecond({seconds})"


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: str  # the column and index list between the parentheses
    order: str  # PARTITION BY / PRIMARY KEY / ORDER BY clauses
    ttl_column: str | None
    shard_key: str
    # The Collector's settings, plus: inserted parts (tens of MB) are written in the
    # compact format (one data file instead of one per column, measured 25-40% cheaper
    # per insert); merges produce wide parts once they exceed 128 MiB.
    settings: str = "index_granularity = 8192, ttl_only_drop_parts = 1, min_bytes_for_wide_part = 134217728"


_TRACES_COLUMNS = """
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
"""

_TRACE_ID_TS_COLUMNS = """
    TraceId String CODEC(ZSTD(1)),
    Start DateTime CODEC(Delta, ZSTD(1)),
    End DateTime CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
"""

_LOGS_COLUMNS = """
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TimestampTime DateTime DEFAULT toDateTime(Timestamp),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    LogAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    EventName String CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_value mapValues(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_body Body TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
"""

_METRIC_HEAD = """
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ResourceSchemaUrl String CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeDroppedAttrCount UInt32 CODEC(ZSTD(1)),
    ScopeSchemaUrl String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    MetricName String CODEC(ZSTD(1)),
    MetricDescription String CODEC(ZSTD(1)),
    MetricUnit String CODEC(ZSTD(1)),
    Attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    StartTimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)),
    TimeUnix DateTime64(9) CODEC(Delta, ZSTD(1)),"""

_EXEMPLARS = """
    Exemplars Nested (
        FilteredAttributes Map(LowCardinality(String), String),
        TimeUnix DateTime64(9),
        Value Float64,
        SpanId String,
        TraceId String
    ) CODEC(ZSTD(1)),"""

_METRIC_INDEXES = """
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_key mapKeys(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_value mapValues(Attributes) TYPE bloom_filter(0.01) GRANULARITY 1
"""

_METRIC_BODY: Final[dict[str, str]] = {
    "gauge": """
    Value Float64 CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),"""
    + _EXEMPLARS,
    "sum": """
    Value Float64 CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),"""
    + _EXEMPLARS
    + """
    AggregationTemporality Int32 CODEC(ZSTD(1)),
    IsMonotonic Boolean CODEC(Delta, ZSTD(1)),""",
    "histogram": """
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    BucketCounts Array(UInt64) CODEC(ZSTD(1)),
    ExplicitBounds Array(Float64) CODEC(ZSTD(1)),"""
    + _EXEMPLARS
    + """
    Flags UInt32 CODEC(ZSTD(1)),
    Min Float64 CODEC(ZSTD(1)),
    Max Float64 CODEC(ZSTD(1)),
    AggregationTemporality Int32 CODEC(ZSTD(1)),""",
    "exponential_histogram": """
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    Scale Int32 CODEC(ZSTD(1)),
    ZeroCount UInt64 CODEC(ZSTD(1)),
    PositiveOffset Int32 CODEC(ZSTD(1)),
    PositiveBucketCounts Array(UInt64) CODEC(ZSTD(1)),
    NegativeOffset Int32 CODEC(ZSTD(1)),
    NegativeBucketCounts Array(UInt64) CODEC(ZSTD(1)),"""
    + _EXEMPLARS
    + """
    Flags UInt32 CODEC(ZSTD(1)),
    Min Float64 CODEC(ZSTD(1)),
    Max Float64 CODEC(ZSTD(1)),
    AggregationTemporality Int32 CODEC(ZSTD(1)),""",
    "summary": """
    Count UInt64 CODEC(Delta, ZSTD(1)),
    Sum Float64 CODEC(ZSTD(1)),
    ValueAtQuantiles Nested (
        Quantile Float64,
        Value Float64
    ) CODEC(ZSTD(1)),
    Flags UInt32 CODEC(ZSTD(1)),""",
}

_GENAI_COLUMNS = """
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    TenantId LowCardinality(String) CODEC(ZSTD(1)),
    Provider LowCardinality(String) CODEC(ZSTD(1)),
    RequestModel LowCardinality(String) CODEC(ZSTD(1)),
    ResponseModel LowCardinality(String) CODEC(ZSTD(1)),
    Operation LowCardinality(String) CODEC(ZSTD(1)),
    InputTokens UInt64 CODEC(ZSTD(1)),
    OutputTokens UInt64 CODEC(ZSTD(1)),
    CacheReadTokens UInt64 CODEC(ZSTD(1)),
    CacheWriteTokens UInt64 CODEC(ZSTD(1)),
    ReasoningTokens UInt64 CODEC(ZSTD(1)),
    CostUsd Decimal(18, 9) CODEC(ZSTD(1)),
    DurationNs UInt64 CODEC(ZSTD(1)),
    ErrorType LowCardinality(String) CODEC(ZSTD(1)),
    AnomalyKinds Array(String) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1
"""

_AUDIT_CHAIN_ID = "ChainId LowCardinality(String) CODEC(ZSTD(1))"
_AUDIT_SEQ = "Seq UInt64 CODEC(Delta, ZSTD(1))"
_AUDIT_COLUMNS = f"""
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    {_AUDIT_CHAIN_ID},
    {_AUDIT_SEQ},
    RecordId String CODEC(ZSTD(1)),
    TenantId LowCardinality(String) CODEC(ZSTD(1)),
    ActorId String CODEC(ZSTD(1)),
    Action LowCardinality(String) CODEC(ZSTD(1)),
    ResourceType LowCardinality(String) CODEC(ZSTD(1)),
    ResourceId String CODEC(ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    Details String CODEC(ZSTD(1)),
    PrevHash String CODEC(ZSTD(1)),
    RecordHash String CODEC(ZSTD(1))
"""

_ORDER_METRICS = """PARTITION BY toDate(TimeUnix)
ORDER BY (ServiceName, MetricName, Attributes, toUnixTimestamp64Nano(TimeUnix))"""

TABLE_SPECS: Final[tuple[TableSpec, ...]] = (
    TableSpec(
        TRACES,
        _TRACES_COLUMNS,
        "PARTITION BY toDate(Timestamp)\nORDER BY (ServiceName, SpanName, toDateTime(Timestamp))",
        "toDateTime(Timestamp)",
        "cityHash64(TraceId)",
    ),
    TableSpec(
        TRACE_ID_TS,
        _TRACE_ID_TS_COLUMNS,
        "PARTITION BY toDate(Start)\nORDER BY (TraceId, Start)",
        "toDateTime(Start)",
        "cityHash64(TraceId)",
    ),
    TableSpec(
        LOGS,
        _LOGS_COLUMNS,
        "PARTITION BY toDate(TimestampTime)\nPRIMARY KEY (ServiceName, TimestampTime)\n"
        "ORDER BY (ServiceName, TimestampTime, Timestamp)",
        "TimestampTime",
        "cityHash64(ServiceName, TraceId, Timestamp)",
    ),
    *(
        TableSpec(
            METRICS[kind],
            _METRIC_HEAD + _METRIC_BODY[kind] + _METRIC_INDEXES,
            _ORDER_METRICS,
            "toDateTime(TimeUnix)",
            "cityHash64(ServiceName, MetricName, TimeUnix)",
        )
        for kind in columns.METRIC_KINDS
    ),
    TableSpec(
        GENAI_CALLS,
        _GENAI_COLUMNS,
        "PARTITION BY toDate(Timestamp)\nORDER BY (ServiceName, RequestModel, toDateTime(Timestamp))",
        "toDateTime(Timestamp)",
        "cityHash64(TraceId)",
    ),
    # Audit records outlive telemetry retention: no TTL on them.
    TableSpec(
        AUDIT_LOG,
        _AUDIT_COLUMNS,
        "PARTITION BY toYYYYMM(Timestamp)\nORDER BY (ChainId, Seq)",
        None,
        "cityHash64(ChainId)",  # a chain stays on one shard
        settings="index_granularity = 8192, min_bytes_for_wide_part = 134217728",
    ),
)


# Parts are merged in wider steps than ClickHouse's default base of 5. Every merge rewrites
# its rows with the Collector's ZSTD codecs and rebuilds the five bloom-filter indexes, so
# fewer merge levels cost less CPU per span stored: 0-8% more spans/s sustained into
# embedded chDB, 4% in the median of four 45-60 s pairs. The price is a few more parts
# per partition, tens and not hundreds: ClickHouse lowers the base as parts accumulate.
MERGE_SELECTOR_BASE: Final = 10


@dataclass(frozen=True)
class Schema:
    """Names and DDL of one store (a database, optionally on a cluster)."""

    database: str = "otel"
    cluster: str | None = None
    ttl_seconds: int = 0
    # None for a server older than the setting (ClickHouse 24.12), which refuses it.
    merge_selector_base: int | None = MERGE_SELECTOR_BASE

    def __post_init__(self) -> None:
        for what, name in (("database", self.database), ("cluster", self.cluster)):
            if name is not None and not IDENTIFIER.match(name):
                raise ValueError(f"{what} {name!r} must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*)")

    def qualified(self, table: str) -> str:
        return f"`{self.database}`.`{table}`"

    def storage_name(self, table: str) -> str:
        """The table that holds the rows: ``<name>_local`` on a cluster."""
        return f"{table}_local" if self.cluster else table

    @property
    def _on_cluster(self) -> str:
        return f" ON CLUSTER `{self.cluster}`" if self.cluster else ""

    def _engine(self, spec: TableSpec) -> str:
        if self.cluster:
            return "ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')"
        return "MergeTree"

    def _table(self, spec: TableSpec) -> list[str]:
        ttl = ttl_clause(self.ttl_seconds, spec.ttl_column) if spec.ttl_column else ""
        settings = spec.settings
        if self.merge_selector_base is not None:
            settings += f", merge_selector_base = {self.merge_selector_base}"
        if not self.cluster:
            # Replicated tables deduplicate inserts by default; plain MergeTree only with a window.
            settings += f", non_replicated_deduplication_window = {DEDUP_WINDOW}"
        ttl_line = f"\n{ttl}" if ttl else ""
        local = self.qualified(self.storage_name(spec.name))
        statements = [
            f"CREATE TABLE IF NOT EXISTS {local}{self._on_cluster} ({spec.columns})\n"
            f"ENGINE = {self._engine(spec)}\n{spec.order}{ttl_line}\nSETTINGS {settings}"
        ]
        if self.cluster:
            statements.append(
                f"CREATE TABLE IF NOT EXISTS {self.qualified(spec.name)}{self._on_cluster} AS {local}\n"
                f"ENGINE = Distributed(`{self.cluster}`, `{self.database}`, "
                f"`{self.storage_name(spec.name)}`, {spec.shard_key})"
            )
        return statements

    def statements(self) -> list[str]:
        """Every DDL statement, in the order they must run."""
        out = [f"CREATE DATABASE IF NOT EXISTS `{self.database}`{self._on_cluster}"]
        for spec in TABLE_SPECS:
            out.extend(self._table(spec))
        on = self._on_cluster
        traces_rows = self.qualified(self.storage_name(TRACES))
        # Views on the row tables run where the rows land (each shard on a cluster).
        view = self.qualified(self.storage_name(TRACE_ID_TS_MV))
        out.append(
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view}{on}\n"
            f"TO {self.qualified(self.storage_name(TRACE_ID_TS))}\n"
            "AS SELECT\n    TraceId,\n    min(Timestamp) AS Start,\n    max(Timestamp) AS End\n"
            f"FROM {traces_rows}\nWHERE TraceId != ''\nGROUP BY TraceId"
        )
        view = self.qualified(self.storage_name(GENAI_CALLS_MV))
        out.append(
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view}{on}\n"
            f"TO {self.qualified(self.storage_name(GENAI_CALLS))}\n"
            f"AS {columns.genai_select(traces_rows)}"
        )
        # Input tables: requests arrive here and views write rows through the
        # user-facing names (Distributed tables on a cluster).
        for path in INSERT_PATHS:
            table = self.qualified(path.table)
            out.append(f"CREATE TABLE IF NOT EXISTS {table}{on} ({path.structure})\nENGINE = Null")
            out.append(
                f"CREATE MATERIALIZED VIEW IF NOT EXISTS {self.qualified(path.view)}{on}\n"
                f"TO {self.qualified(path.target)}\nAS {path.select(table)}"
            )
        return out

    def audit_upgrade_statements(self) -> list[str]:
        """Stores made before audit records were written have ``audit_log`` without its
        chain columns: these add them (a no-op where they exist)."""
        return [
            f"ALTER TABLE {self.qualified(table)}{self._on_cluster}\n"
            f"ADD COLUMN IF NOT EXISTS {_AUDIT_CHAIN_ID} AFTER Timestamp,\n"
            f"ADD COLUMN IF NOT EXISTS {_AUDIT_SEQ} AFTER ChainId"
            for table in dict.fromkeys((self.storage_name(AUDIT_LOG), AUDIT_LOG))
        ]

    def created_name(self, statement: str) -> str | None:
        """The table or view a CREATE statement makes (None for the database)."""
        m = re.match(r"CREATE (?:TABLE|MATERIALIZED VIEW) IF NOT EXISTS `[^`]+`\.`([^`]+)`", statement)
        return m.group(1) if m else None

    def missing_statements(self, existing: set[str]) -> list[str]:
        """The statements still needed when ``existing`` tables and views are present.

        On a cluster every statement runs (``IF NOT EXISTS``): the node we ask is not
        proof that the others have them.
        """
        if self.cluster:
            return self.statements()
        out = []
        for statement in self.statements():
            name = self.created_name(statement)
            if name is None or name not in existing:
                out.append(statement)
        return out

    def stale_insert_paths(self, existing: set[str]) -> list[str]:
        """The tables and views of other releases' insert paths among ``existing``,
        views first (the order to drop them in)."""
        current = {name for path in INSERT_PATHS for name in (path.table, path.view)}
        stale = [name for name in existing if name not in current and _ANY_INSERT_PATH.match(name)]
        return sorted(stale, key=lambda name: (not _is_view(name), name))

    def drop_statements(self, stale: Sequence[str]) -> list[str]:
        return [
            f"DROP {'VIEW' if _is_view(name) else 'TABLE'} IF EXISTS {self.qualified(name)}{self._on_cluster}"
            for name in stale
        ]

    def input_tables(self, parts: Sequence[Batch]) -> list[str]:
        """The input tables requests of one signal go to: one per signal, one per metric
        kind present."""
        first = parts[0]
        if isinstance(first, ExportTraceServiceRequest):
            return [TRACES_INPUT]
        if isinstance(first, ExportLogsServiceRequest):
            return [LOGS_INPUT]
        kinds: set[str] = set()
        for batch in parts:
            for rm in batch.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        kind = metric.WhichOneof("data")
                        if kind is not None:
                            kinds.add(kind)
        return [METRICS_INPUT[k] for k in columns.METRIC_KINDS if k in kinds]
