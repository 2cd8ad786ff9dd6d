"""Reading the store: the receiver's read-only query endpoint and the CLI helpers.

While a receiver runs, its embedded store is locked to its process, so
``otel-receiver query`` and ``report`` ask the receiver's query endpoint
(``query_endpoint``, loopback by default). The endpoint runs SQL on a chDB
connection opened with ``readonly=1``: the engine itself refuses writes, DDL and
setting changes, whatever the SQL text. When no receiver answers, the CLI opens the
embedded store directly (read-only as well); a server endpoint is queried directly
with clickhouse-connect and ``readonly=1``.

Endpoint protocol: ``GET /status`` returns ``{"store": PATH, "database": DB}``;
``POST /query?format=FORMAT`` with the SQL as body returns the result in that
ClickHouse output format (400 with the engine's message on error).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.error
import urllib.request
from typing import Any, Final, Literal

from .client import EmbeddedStore, ServerStore, Store, StoreError, open_store
from .config import ClickHouseConfig
from .schema import GENAI_CALLS, parse_ttl

OutputFormat = Literal["table", "json", "csv"]
FORMATS: Final[dict[str, str]] = {
    "table": "PrettyCompactNoEscapesMonoBlock",
    "json": "JSONEachRow",  # one JSON object per row
    "csv": "CSVWithNames",
}
_ENDPOINT_FORMATS: Final = frozenset(FORMATS.values()) | {"TSVWithNames", "JSON"}
_CONNECT_TIMEOUT: Final = 2.0
_QUERY_TIMEOUT: Final = 300.0


class QueryError(Exception):
    """A query that could not run; the message says why, for the CLI to print."""


# --------------------------------------------------------------------------------------
# The endpoint (runs inside the receiver)
# --------------------------------------------------------------------------------------


async def start_query_server(config: ClickHouseConfig, logger: logging.Logger) -> QueryServer | None:
    """Serve read-only SQL on ``config.query_endpoint``; None when the address is taken."""
    from aiohttp import web

    assert config.query_endpoint is not None
    host, _, port = config.query_endpoint.rpartition(":")
    store = await asyncio.to_thread(EmbeddedStore, config.embedded_path, config.database, True)

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"store": store.path, "database": store.database})

    async def query(request: web.Request) -> web.Response:
        fmt = request.query.get("format", FORMATS["table"])
        if fmt not in _ENDPOINT_FORMATS:
            return web.Response(status=400, text=f"unsupported format {fmt!r}\n")
        sql = await request.text()
        if not sql.strip():
            return web.Response(status=400, text="empty query\n")
        try:
            out = await asyncio.to_thread(store.query, sql, fmt, True)
        except StoreError as e:
            return web.Response(status=400, text=f"{e}\n")
        return web.Response(body=out, content_type="text/plain", charset="utf-8")

    app = web.Application(client_max_size=1 << 20)
    app.router.add_get("/status", status)
    app.router.add_post("/query", query)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]"), int(port))
    try:
        await site.start()
    except OSError as e:
        logger.warning(
            "clickhouse: query endpoint %s unavailable (%s); `otel-receiver query` cannot reach "
            "this store while the receiver runs",
            config.query_endpoint,
            e,
        )
        await runner.cleanup()
        await asyncio.to_thread(store.close)
        return None
    logger.info("clickhouse: read-only query endpoint on http://%s", config.query_endpoint)
    return QueryServer(runner, store)


class QueryServer:
    """A running query endpoint and its read-only store connection."""

    def __init__(self, runner: Any, store: EmbeddedStore) -> None:
        self.runner = runner
        self.store = store

    @property
    def addresses(self) -> list[Any]:
        return list(self.runner.addresses)

    async def cleanup(self) -> None:
        await self.runner.cleanup()
        await asyncio.to_thread(self.store.close)


# --------------------------------------------------------------------------------------
# CLI helpers
# --------------------------------------------------------------------------------------


def _endpoint_url(config: ClickHouseConfig) -> str | None:
    if not config.embedded or not config.query_endpoint:
        return None
    host, _, port = config.query_endpoint.rpartition(":")
    if host in ("0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def _ask_endpoint(base: str, config: ClickHouseConfig, sql: str, fmt: str) -> str | None:
    """The endpoint's answer, or None when no receiver listens there."""
    try:
        with urllib.request.urlopen(base + "/status", timeout=_CONNECT_TIMEOUT) as resp:
            status = json.loads(resp.read())
    except urllib.error.URLError as e:
        if isinstance(e.reason, ConnectionRefusedError):
            return None  # no receiver: the caller opens the store itself
        raise QueryError(f"query endpoint {config.query_endpoint}: {e.reason}") from e
    except ConnectionRefusedError:
        return None
    except (ConnectionError, TimeoutError, ValueError) as e:
        raise QueryError(f"query endpoint {config.query_endpoint} did not answer properly: {e}") from e
    wanted = os.path.abspath(config.embedded_path)
    if status.get("store") != wanted:
        raise QueryError(
            f"the receiver answering on {config.query_endpoint} serves the store {status.get('store')}, "
            f"not {wanted}"
        )
    req = urllib.request.Request(
        f"{base}/query?format={fmt}", data=sql.encode(), method="POST", headers={"Content-Type": "text/plain"}
    )
    try:
        with urllib.request.urlopen(req, timeout=_QUERY_TIMEOUT) as resp:
            text: str = resp.read().decode()
            return text
    except urllib.error.HTTPError as e:
        raise QueryError(e.read().decode().strip() or str(e)) from e
    except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
        raise QueryError(f"query endpoint {config.query_endpoint}: {e}") from e


def _direct(config: ClickHouseConfig, sql: str, fmt: str) -> str:
    store: Store
    try:
        store = open_store(config, readonly=True) if config.embedded else ServerStore(config)
    except StoreError as e:
        raise QueryError(str(e)) from e
    try:
        return store.query(sql, fmt, readonly=True).decode()
    except StoreError as e:
        raise QueryError(str(e)) from e
    finally:
        store.close()


def run_query(exporter_config: ClickHouseConfig, sql: str, fmt: OutputFormat = "table") -> str:
    """Run ``sql`` read-only on the exporter's store; ``fmt`` is table, json (one object per row) or csv.

    Uses the running receiver's query endpoint when it answers, else opens the
    embedded store directly; a server endpoint is queried directly.
    """
    if fmt not in FORMATS:
        raise QueryError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    ch_format = FORMATS[fmt]
    base = _endpoint_url(exporter_config)
    if base is not None:
        answer = _ask_endpoint(base, exporter_config, sql, ch_format)
        if answer is not None:
            return answer
    if exporter_config.embedded and not os.path.isdir(exporter_config.embedded_path):
        where = os.path.abspath(exporter_config.embedded_path)
        raise QueryError(f"no embedded store at {where} (nothing stored yet?)")
    return _direct(exporter_config, sql, ch_format)


_GROUPS: Final[dict[str, list[tuple[str, str]]]] = {
    "service": [("service", "ServiceName")],
    "model": [("provider", "Provider"), ("model", "RequestModel")],
    "tenant": [("tenant", "if(TenantId = '', '(none)', TenantId)")],
}


def report_sql(database: str, seconds: int, by: str) -> str:
    """The SQL of ``otel-receiver report``: one row per group over the last ``seconds``."""
    if by not in _GROUPS:
        raise QueryError(f"unknown grouping {by!r}; use one of {', '.join(_GROUPS)}")
    keys = _GROUPS[by]
    select_keys = ",\n    ".join(f"{expr} AS {name}" for name, expr in keys)
    group = ", ".join(name for name, _ in keys)
    return f"""SELECT
    {select_keys},
    count() AS calls,
    sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens,
    sum(CacheReadTokens) AS cache_read_tokens,
    sum(ReasoningTokens) AS reasoning_tokens,
    sum(CostUsd) AS cost_usd,
    round(quantileExact(0.5)(DurationNs) / 1e6, 1) AS p50_ms,
    round(quantileExact(0.95)(DurationNs) / 1e6, 1) AS p95_ms,
    round(100 * countIf(ErrorType != '') / count(), 2) AS error_pct,
    countIf(notEmpty(AnomalyKinds)) AS anomalies,
    arrayStringConcat(arrayMap((k, n) -> concat(k, '=', toString(n)),
        (sumMap(AnomalyKinds, arrayMap(k -> toUInt64(1), AnomalyKinds)) AS kinds).1, kinds.2), ' ')
        AS anomaly_kinds
FROM `{database}`.`{GENAI_CALLS}`
WHERE Timestamp >= now64(9) - toIntervalSecond({seconds})
GROUP BY {group}
ORDER BY cost_usd DESC, calls DESC"""


def run_report(exporter_config: ClickHouseConfig, since: str = "24h", by: str = "model") -> str:
    """GenAI calls, tokens, cost, p50/p95 latency, error rate and anomalies per ``by`` as a table."""
    try:
        seconds = parse_ttl(since)
    except ValueError as e:
        raise QueryError(f"--since {since!r}: expected e.g. 30m, 24h, 7d") from e
    if seconds <= 0:
        raise QueryError("--since must be a positive duration, e.g. 24h")
    out = run_query(exporter_config, report_sql(exporter_config.database, seconds, by), "table")
    if not out.strip():
        return f"no GenAI calls in the last {since}\n"
    return out
