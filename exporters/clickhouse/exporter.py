"""The ``clickhouse`` exporter: one insert per queued batch, deduplicated on replay."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from otel_receiver.component import (
    Batch,
    ComponentSettings,
    Exporter,
    ExporterConfig,
    PermanentExportError,
    RequestContext,
    RetryableExportError,
    Signal,
    count_items,
    signal_of,
)
from otel_receiver.telemetry import PerRegistry

from . import columns, deep_values, native, wire
from .client import SettingValue, Store, StoreError, open_store
from .config import ClickHouseConfig
from .schema import AUDIT_LOG, LOGS, TRACES, Schema

# Batches rendered ahead after one held values too deep for the SQL (``_render_deep``).
RENDER_DEEP_AHEAD = 16


class _Metrics:
    """The exporter's own metrics, shared by every instance on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.insert_seconds = Histogram(
            "otel_receiver_clickhouse_insert_seconds",
            "Duration of one ClickHouse insert (a coalesced batch), including serialization",
            ["exporter", "signal"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self.insert_bytes = Counter(
            "otel_receiver_clickhouse_insert_bytes",
            "Bytes sent to ClickHouse: serialized OTLP requests, or rows built by the C encoder",
            ["exporter", "signal"],
            registry=registry,
        )
        self.insert_errors = Counter(
            "otel_receiver_clickhouse_insert_errors",
            "Failed ClickHouse inserts by kind (retryable or permanent)",
            ["exporter", "signal", "kind"],
            registry=registry,
        )
        self.deep_values = Counter(
            "otel_receiver_clickhouse_deep_values",
            "Attribute values and log bodies nested deeper than the SQL decodes, rendered "
            "to their stored JSON in Python before the insert",
            ["exporter", "signal"],
            registry=registry,
        )


_METRICS: PerRegistry[_Metrics] = PerRegistry()


def insert_settings(signal: Signal) -> dict[str, SettingValue]:
    """Settings of every insert of ``signal``, whatever the backend."""
    return {
        **wire.input_settings(signal),
        "insert_deduplicate": 1,
        # a replayed insert is dropped by the views' target tables too
        "deduplicate_blocks_in_dependent_materialized_views": 1,
        # The views' if/multiIf branches are cheap per row: evaluating them lazily
        # (a row mask per branch) cost more than it saved, 128 -> 95 ms per 10,000
        # spans. Every expression in columns.py is safe on any input in every branch.
        "short_circuit_function_evaluation": "disable",
    }


def _serialize(parts: Sequence[Batch]) -> bytes:
    # In the worker thread: serializing 10,000 spans takes tens of ms. The queue's
    # requests are serialized one by one and concatenated, which is the serialization
    # of their merge without first copying every span into one.
    return b"".join([p.SerializeToString() for p in parts])


class ClickHouseExporter(Exporter):
    signals = frozenset(Signal)
    uses_wire = True

    def __init__(self, config: ExporterConfig, settings: ComponentSettings) -> None:
        super().__init__(config, settings)
        assert isinstance(config, ClickHouseConfig)
        self.cfg: ClickHouseConfig = config
        self.schema = Schema(config.database, config.cluster, config.ttl_seconds)
        self.store: Store | None = None
        self._schema_ready = not config.create_schema
        self._schema_lock = asyncio.Lock()
        self._metrics = _METRICS.get(settings.telemetry.registry, _Metrics)
        self._query_server: Any = None
        self._settings = {signal: insert_settings(signal) for signal in Signal}
        self._native_settings: dict[str, SettingValue] = {
            "insert_deduplicate": 1,
            "deduplicate_blocks_in_dependent_materialized_views": 1,
        }
        # Batches left to render before their first insert, per signal (``_render_deep``).
        self._render_deep_first = dict.fromkeys(Signal, 0)

    async def start(self) -> None:
        self.store = await asyncio.to_thread(open_store, self.cfg)
        try:
            await self._ensure_schema()
        except RetryableExportError as e:
            # A server that is down at start must not keep the receiver from starting:
            # the first export retries the schema step.
            self.settings.logger.warning("%s: schema not created yet: %s", self.settings.component_id, e)
        if self.cfg.embedded and self.cfg.query_endpoint:
            from .query import start_query_server

            self._query_server = await start_query_server(self.cfg, self.settings.logger)
        where = self.cfg.endpoint if not self.cfg.embedded else f"embedded store {self.cfg.embedded_path}"
        rows = "span and log rows built in C" if self.cfg.native_rows else "rows built in SQL views"
        if self.cfg.row_encoder == "auto" and not self.cfg.native_rows:
            rows += " (the C row encoder is not built: install with a C compiler for about half the CPU)"
        self.settings.logger.info(
            "%s: writing to %s, database %s, %s", self.settings.component_id, where, self.cfg.database, rows
        )

    def describe(self) -> str:
        where = self.cfg.endpoint if not self.cfg.embedded else f"embedded store {self.cfg.embedded_path}"
        line = f"writing to {where}, database {self.cfg.database}"
        if self.cfg.embedded and self.cfg.query_endpoint:
            line += f"; read-only SQL for `otel-receiver query/report` on http://{self.cfg.query_endpoint}"
        return line

    async def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        async with self._schema_lock:
            if self._schema_ready:
                return
            store = self._require_store()
            try:
                # Creating a view makes ClickHouse analyse its query (~0.1 s each), so
                # a restart skips what exists.
                listed = await asyncio.to_thread(
                    store.query,
                    f"SELECT name FROM system.tables WHERE database = '{self.cfg.database}'",
                    "TabSeparatedRaw",
                    False,
                    False,
                )
                existing = set(listed.decode().split())
                wide_merges = self.schema.merge_selector_base is not None
                if wide_merges and not await self._knows_merge_selector_base(store):
                    self.schema = dataclasses.replace(self.schema, merge_selector_base=None)
                for statement in self.schema.missing_statements(existing):
                    await asyncio.to_thread(store.execute, statement)
                if AUDIT_LOG in existing and (self.cfg.cluster or not await self._has_audit_chain(store)):
                    for statement in self.schema.audit_upgrade_statements():
                        await asyncio.to_thread(store.execute, statement)
                await self._retire_stale_insert_paths(store, existing)
            except StoreError as e:
                if e.retryable:
                    raise RetryableExportError(f"creating the schema: {e}") from e
                raise PermanentExportError(f"creating the schema: {e}") from e
            self._schema_ready = True

    @staticmethod
    async def _any_row(store: Store, sql: str) -> bool:
        found = await asyncio.to_thread(store.query, sql, "TabSeparatedRaw", False, False)
        return bool(found.strip())

    async def _knows_merge_selector_base(self, store: Store) -> bool:
        """Whether the server has the table setting (since ClickHouse 24.12); an older one
        refuses a CREATE TABLE that names it."""
        sql = "SELECT name FROM system.merge_tree_settings WHERE name = 'merge_selector_base'"
        return await self._any_row(store, sql)

    async def _has_audit_chain(self, store: Store) -> bool:
        return await self._any_row(
            store,
            f"SELECT name FROM system.columns WHERE database = '{self.cfg.database}' "
            f"AND table = '{AUDIT_LOG}' AND name = 'ChainId'",
        )

    async def _retire_stale_insert_paths(self, store: Store, existing: set[str]) -> None:
        stale = self.schema.stale_insert_paths(existing)
        if not stale:
            return
        component = self.settings.component_id
        if not self.cfg.embedded:
            # Receivers of an older release may still insert through them (a rolling
            # upgrade): dropping them would lose those receivers' rows.
            self.settings.logger.info(
                "%s: insert paths of another release exist (%s); drop them once no receiver of that "
                "release writes to database %s",
                component,
                ", ".join(stale),
                self.cfg.database,
            )
            return
        # The embedded store belongs to this process alone, and these hold no data.
        for statement in self.schema.drop_statements(stale):
            await asyncio.to_thread(store.execute, statement)
        self.settings.logger.info(
            "%s: dropped the insert paths of an earlier release: %s", component, ", ".join(stale)
        )

    def _require_store(self) -> Store:
        if self.store is None:
            raise RetryableExportError("the exporter is not started")
        return self.store

    async def export(self, batch: Batch, context: RequestContext) -> None:
        await self.export_parts([batch], context)

    async def export_parts(self, parts: Sequence[Batch], context: RequestContext) -> None:
        # The C row encoder takes a client's bytes too (it refuses what it would read
        # differently from the parser); the SQL path only bytes protobuf wrote.
        pieces = context.wire_pieces_for(parts)
        from_client = pieces is not None and context.wire_from_client
        canonical_pieces = None if from_client else pieces
        parts = [p for p in parts if count_items(p)]
        if not parts:
            return
        await self._ensure_schema()
        store = self._require_store()
        signal = signal_of(parts[0])
        tables = self.schema.input_tables(parts)
        component = self.settings.component_id
        token = context.dedup_token
        started = time.perf_counter()

        def insert() -> int:
            if signal is not Signal.METRICS and self.cfg.native_rows:
                size = self._insert_native_rows(store, signal, parts, token, pieces, from_client)
                if size is not None:
                    return size
            current: Sequence[Batch] = parts
            walked = False  # at most one walk for too-deep values per batch
            if self._render_deep_first[signal] > 0:
                walked = True
                current = self._render_deep(current, signal, component) or current
            body = (
                b"".join(canonical_pieces)
                if canonical_pieces is not None and current is parts
                else _serialize(current)
            )
            # A metrics request goes to one input per metric kind it holds. When a later
            # insert fails, the retry repeats the earlier ones: their tokens drop them.
            for table in tables:
                settings = self._settings[signal]
                if token:
                    # The queue's token is stable across replays of the same items; the
                    # table name keeps tokens of different inputs apart.
                    settings = {**settings, "insert_deduplication_token": f"{token}/{table}"}
                try:
                    try:
                        store.insert_request(table, body, settings)
                    except StoreError as e:
                        # The views refuse values nested deeper than they decode, before
                        # writing any row: render those in Python and insert once more.
                        if walked or columns.DEEPER_THAN_DECODED not in str(e):
                            raise
                        walked = True
                        again = self._render_deep(current, signal, component)
                        if again is None:
                            raise
                        current = again
                        body = _serialize(current)
                        store.insert_request(table, body, settings)
                except StoreError as e:
                    e.table = table
                    raise
            return len(body)

        try:
            size = await asyncio.to_thread(insert)
        except StoreError as e:
            kind = "retryable" if e.retryable else "permanent"
            self._metrics.insert_errors.labels(component, signal.value, kind).inc()
            if e.retryable:
                raise RetryableExportError(f"clickhouse insert into {e.table}: {e}") from e
            raise PermanentExportError(f"clickhouse rejected {e.table} insert: {e}") from e
        self._metrics.insert_seconds.labels(component, signal.value).observe(time.perf_counter() - started)
        self._metrics.insert_bytes.labels(component, signal.value).inc(size)

    def _insert_native_rows(
        self,
        store: Store,
        signal: Signal,
        parts: Sequence[Batch],
        token: str | None,
        pieces: Sequence[bytes] | None,
        from_client: bool = False,
    ) -> int | None:
        """Insert the spans or log records of ``parts`` as rows built by the C encoder
        straight into their table; None when the encoder refuses the requests (the caller
        then takes the SQL path, which renders what the encoder cannot). ``pieces``: the
        parts' bytes, a client's when ``from_client``."""
        if signal is Signal.TRACES:
            table, columns, encode = TRACES, native.TRACES_COLUMNS, native.trace_rows
        else:
            table, columns, encode = LOGS, native.LOGS_COLUMNS, native.log_rows
        try:
            rows, _ = encode(parts, pieces)
        except ValueError as e:
            refused = e
            if not from_client:
                self._log_encoder_refusal(refused)
                return None
            # A client may encode a message protobuf writes once in several fields (the
            # parser merges them); the encoder refuses what it would read differently,
            # and protobuf's own serialization is encoded instead (~2-4 us per span,
            # which taking the client's bytes saves in every other case).
            try:
                rows, _ = encode(parts, None)
            except ValueError as again:
                self._log_encoder_refusal(again)
                return None
        settings = self._native_settings
        if token:
            settings = {**settings, "insert_deduplication_token": f"{token}/{table}"}
        try:
            store.insert_request(table, rows, settings, fmt=native.FORMAT, columns=columns)
        except StoreError as e:
            e.table = table
            raise
        return len(rows)

    def _log_encoder_refusal(self, e: ValueError) -> None:
        self.settings.logger.warning(
            "%s: C row encoder: %s; inserting this batch through SQL", self.settings.component_id, e
        )

    def write_audit_rows(self, body: bytes, dedup_token: str) -> None:
        """Insert audit records (JSONColumns) into ``audit_log``; the audit processor's
        trail calls it from its own thread and retries on any exception."""
        if not self._schema_ready:
            raise StoreError("the schema is not created yet (the store was down at start)")
        settings: dict[str, SettingValue] = {"insert_deduplication_token": dedup_token}
        self._require_store().insert_request(AUDIT_LOG, body, settings, fmt="JSONColumns")

    def _render_deep(self, parts: Sequence[Batch], signal: Signal, component: str) -> list[Batch] | None:
        """``parts`` with their too-deep values rendered (``deep_values``), or None.

        After a batch needed it, the next ones of the signal are rendered before their
        first insert: a sender of deep values keeps sending them, and a Python walk
        costs less than an insert that fails. Without a find for a while, the walk stops."""
        found = deep_values.render_too_deep(parts)
        if found is None:
            self._render_deep_first[signal] = max(0, self._render_deep_first[signal] - 1)
            return None
        rendered, count = found
        self._render_deep_first[signal] = RENDER_DEEP_AHEAD
        self._metrics.deep_values.labels(component, signal.value).inc(count)
        return rendered

    async def shutdown(self) -> None:
        if self._query_server is not None:
            await self._query_server.cleanup()
            self._query_server = None
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None
