"""One interface over the two ways to reach ClickHouse.

``EmbeddedStore`` runs the real ClickHouse engine in-process through chDB on a
directory; ``ServerStore`` talks HTTP(S) to a server or cluster through
``clickhouse-connect``. Both run the same DDL and receive the same insert: the
serialized OTLP request in ``ProtobufSingle`` format into the signal's input table,
with the same settings. Every call blocks; the exporter runs them in a thread.

chDB hosts one engine per process, bound to one directory: every store opened on
the same directory shares it, and opening a second directory fails while the first
is open. A directory is also locked by the process that has it open, so a second
process (the CLI) gets ``StoreBusyError`` while a receiver runs on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from .config import ClickHouseConfig
from .sql import sql_literal

SettingValue = str | int


class StoreError(Exception):
    """A failed store operation; ``retryable`` tells whether trying again can help."""

    def __init__(self, message: str, retryable: bool = True, code: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        self.table = ""  # set by the exporter: which table the insert went to


class StoreBusyError(StoreError):
    """The embedded directory is held by another process (a running receiver)."""


# ClickHouse error codes that mean the data itself is bad: retrying cannot help.
_PERMANENT_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        444,  # UNKNOWN_PROTOBUF_FORMAT (corrupted message)
    }
)
_CODE = re.compile(r"Code: (\d+)")


def error_code(message: str) -> int | None:
    m = _CODE.search(message)
    return int(m.group(1)) if m else None


def classify(exc: BaseException) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    message = str(exc) or type(exc).__name__
    code = error_code(message)
    return StoreError(message, retryable=code not in _PERMANENT_CODES, code=code)


def settings_clause(settings: Mapping[str, SettingValue]) -> str:
    return ", ".join(f"{k} = {sql_literal(v)}" for k, v in settings.items())


def column_list(columns: Sequence[str]) -> str:
    """`` (`a`, `b.c`)`` for an INSERT, or "" for all columns."""
    return " (" + ", ".join(f"`{c}`" for c in columns) + ")" if columns else ""


class Store(ABC):
    """A ClickHouse to write requests into and read rows from."""

    database: str

    @abstractmethod
    def execute(self, sql: str) -> None:
        """Run a statement without a result (DDL)."""

    @abstractmethod
    def insert_request(
        self,
        table: str,
        body: bytes,
        settings: Mapping[str, SettingValue],
        fmt: str = "ProtobufSingle",
        columns: Sequence[str] = (),
    ) -> None:
        """Insert ``body`` (one serialized request, or rows in the format ``fmt``) into
        ``database.table``; ``columns``, when given, are the columns the rows hold."""

    @abstractmethod
    def query(self, sql: str, fmt: str, readonly: bool = True, use_database: bool = True) -> bytes:
        """The result of ``sql`` in the ClickHouse output format ``fmt``; unqualified
        table names resolve in ``database`` when ``use_database`` (it must exist)."""

    @abstractmethod
    def close(self) -> None: ...


# --------------------------------------------------------------------------------------
# Embedded (chDB)
# --------------------------------------------------------------------------------------

_embedded_lock = threading.Lock()
_embedded_path: str | None = None
_embedded_refs = 0
# At most this many statements run on the engine at once (one per connection): the
# exporter's consumers insert concurrently, and ClickHouse runs each insert's
# decoding and views in the calling thread, so one connection per consumer is what
# puts both cores of a small machine to work.
MAX_CONNECTIONS = 4


def _open_session(conn: str) -> Any:
    from chdb.session import Session

    try:
        return Session(conn)
    except Exception as e:
        text = str(e)
        if "Error initializing EmbeddedServer" in text or "Cannot lock file" in text:
            raise StoreBusyError(
                f"the embedded store {conn.split('?')[0]} is in use by another process "
                "(a running receiver?); query it through its query endpoint",
                retryable=True,
            ) from e
        raise classify(e) from e


class _SessionPool:
    """chDB connections on one directory, each used by one thread at a time.

    A chDB connection runs one statement at a time (a second one fails instead of
    waiting), so a caller takes an idle connection, or opens one while fewer than
    ``MAX_CONNECTIONS`` exist, or waits for one to be handed back.
    """

    def __init__(self, conn: str) -> None:
        self.conn = conn
        self._idle: list[Any] = []
        self._open = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        with self._cond:
            while not self._idle and self._open >= MAX_CONNECTIONS:
                self._cond.wait()
            if self._idle:
                session = self._idle.pop()
            else:
                self._open += 1
                session = None
        if session is None:
            try:
                session = _open_session(self.conn)
            except BaseException:
                self._discard(None)
                raise
        try:
            yield session
        except AttributeError:
            # A closed chDB session has no connection left (AttributeError on None):
            # forget it, and the idle ones that went with it, so the next caller
            # opens a new one.
            self._discard(session)
            self.close()
            raise
        except BaseException:
            self._give_back(session)
            raise
        self._give_back(session)

    def _give_back(self, session: Any) -> None:
        with self._cond:
            self._idle.append(session)
            self._cond.notify()

    def _discard(self, session: Any) -> None:
        if session is not None:
            with contextlib.suppress(Exception):
                session.close()
        with self._cond:
            self._open -= 1
            self._cond.notify()

    def idle_sessions(self) -> list[Any]:
        with self._cond:
            return list(self._idle)

    def close(self) -> None:
        with self._cond:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
        for session in idle:
            with contextlib.suppress(Exception):
                session.close()


_embedded_pools: dict[str, _SessionPool] = {}  # "rw" / "ro" -> connections on _embedded_path


# chDB's streaming insert reports errors of the input format but swallows those raised
# while the block is pushed to materialized views (chDB 4.4: ``finish()`` returns
# normally and the views' rows are simply missing). Our inserts go through views only,
# so a failure there (a value too deep for the SQL, too many parts, memory) would lose
# the batch silently. ClickHouse still counts every exception in ``system.errors``:
# comparing the counters of view errors around an insert tells that it failed.
_VIEW_ERRORS_SQL = (
    "SELECT code, value, substring(last_error_message, 1, 400) AS message FROM system.errors "
    "WHERE position(last_error_message, 'while pushing to view') > 0"
)


def _view_error_counts(session: Any) -> dict[int, tuple[int, str]]:
    text = session.query(_VIEW_ERRORS_SQL, "JSONEachRow").bytes()
    out: dict[int, tuple[int, str]] = {}
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            out[int(row["code"])] = (int(row["value"]), str(row["message"]))
    return out


def _view_error_since(
    before: dict[int, tuple[int, str]], after: dict[int, tuple[int, str]]
) -> tuple[int, str] | None:
    """The code and (shortened) message of a view error counted between the snapshots."""
    for code, (count, message) in after.items():
        if count > before.get(code, (0, ""))[0]:
            # The message repeats the whole failing SQL expression: keep its head.
            head = message.split(": while executing", 1)[0]
            return code, head
    return None


class EmbeddedStore(Store):
    """chDB on a directory. ``readonly`` stores refuse writes in the engine itself."""

    def __init__(self, path: str, database: str, readonly: bool = False) -> None:
        global _embedded_path, _embedded_refs
        self.path = os.path.abspath(path)
        self.database = database
        self.readonly = readonly
        self._closed = False
        with _embedded_lock:
            if _embedded_path is not None and _embedded_path != self.path:
                raise StoreError(
                    f"chDB runs one embedded store per process; {_embedded_path} is open, "
                    f"cannot open {self.path} as well",
                    retryable=False,
                )
            if not readonly:
                os.makedirs(self.path, exist_ok=True)
            elif not os.path.isdir(self.path):
                raise StoreError(f"no embedded store at {self.path}", retryable=False)
            if "rw" not in _embedded_pools:
                _embedded_pools["rw"] = _SessionPool(self.path)
                # mode=ro starts its connections with readonly=1: the engine refuses
                # writes and setting changes, whatever the SQL says.
                _embedded_pools["ro"] = _SessionPool(self.path + "?mode=ro")
            if readonly:
                # Fail now, not at the first query, when another process holds the store.
                with _embedded_pools["ro"].session():
                    pass
            else:
                with _embedded_pools["rw"].session():
                    pass
            _embedded_path = self.path
            _embedded_refs += 1

    @contextlib.contextmanager
    def _session(self, kind: str) -> Iterator[Any]:
        if self._closed:
            raise StoreError("the embedded store is closed", retryable=True)
        try:
            with _embedded_pools[kind].session() as session:
                yield session
        except AttributeError as e:
            raise StoreError(f"the embedded store connection was lost: {e}", retryable=True) from e
        except StoreError:
            raise
        except Exception as e:
            raise classify(e) from e

    def execute(self, sql: str) -> None:
        if self.readonly:
            raise StoreError("read-only store", retryable=False)
        with self._session("rw") as session:
            session.query(sql)

    def insert_request(
        self,
        table: str,
        body: bytes,
        settings: Mapping[str, SettingValue],
        fmt: str = "ProtobufSingle",
        columns: Sequence[str] = (),
    ) -> None:
        if self.readonly:
            raise StoreError("read-only store", retryable=False)
        target = f"`{self.database}`.`{table}`{column_list(columns)}"
        statement = f"INSERT INTO {target} SETTINGS {settings_clause(settings)}"
        with self._session("rw") as session:
            before = _view_error_counts(session)
            inserter = session.send_insert(statement, fmt)
            try:
                inserter.append(body)
                inserter.finish()
            except BaseException:
                with contextlib.suppress(Exception):
                    inserter.cancel()
                raise
            after = _view_error_counts(session)
        # A view error of a concurrent insert on another connection may be counted too:
        # then this insert is retried needlessly, and its deduplication token drops the copy.
        failed = _view_error_since(before, after)
        if failed is not None:
            code, message = failed
            raise StoreError(f"the insert failed in a materialized view: {message}", code=code)

    def query(self, sql: str, fmt: str, readonly: bool = True, use_database: bool = True) -> bytes:
        kind = "ro" if readonly or self.readonly else "rw"
        with self._session(kind) as session:
            if use_database:
                session.query(f"USE `{self.database}`")
            result = session.query(sql, fmt)
            data: bytes = result.bytes()
        return data

    def close(self) -> None:
        global _embedded_path, _embedded_refs
        if self._closed:
            return
        self._closed = True
        with _embedded_lock:
            _embedded_refs -= 1
            if _embedded_refs > 0:
                return
            for pool in _embedded_pools.values():
                pool.close()
            _embedded_pools.clear()
            _embedded_path = None


# --------------------------------------------------------------------------------------
# Server (clickhouse-connect)
# --------------------------------------------------------------------------------------


def server_client_kwargs(config: ClickHouseConfig) -> dict[str, Any]:
    """``clickhouse_connect.get_client`` arguments for a server endpoint."""
    url = urlsplit(config.endpoint)
    secure = url.scheme == "https"
    kwargs: dict[str, Any] = {
        "host": url.hostname,
        "port": url.port or (8443 if secure else 8123),
        "username": config.username,
        "password": config.password,
        "database": config.database,
        "secure": secure,
        "compress": False if config.compression == "none" else config.compression,
        "connect_timeout": min(10.0, config.timeout),
        "send_receive_timeout": config.timeout,
        "autogenerate_session_id": False,
    }
    if secure:
        tls = config.tls
        kwargs["verify"] = not tls.insecure_skip_verify
        if tls.ca_file:
            kwargs["ca_cert"] = tls.ca_file
        if tls.cert_file:
            kwargs["client_cert"] = tls.cert_file
            kwargs["client_cert_key"] = tls.key_file
        if tls.server_name_override:
            kwargs["server_host_name"] = tls.server_name_override
    return kwargs


def server_insert_settings(config: ClickHouseConfig) -> dict[str, SettingValue]:
    """Settings a server insert adds to the common ones."""
    settings: dict[str, SettingValue] = {}
    if config.async_insert:
        # Wait for the flush so an acknowledged insert is durable; deduplicate
        # retried async inserts like synchronous ones.
        settings.update({"async_insert": 1, "wait_for_async_insert": 1, "async_insert_deduplicate": 1})
    if config.cluster:
        # Forward to the shards before answering, so a failure is seen and retried.
        settings["distributed_foreground_insert"] = 1
    return settings


def raw_insert_arguments(
    config: ClickHouseConfig,
    table: str,
    body: bytes,
    settings: Mapping[str, SettingValue],
    fmt: str = "ProtobufSingle",
    columns: Sequence[str] = (),
) -> dict[str, Any]:
    """Keyword arguments of clickhouse-connect's ``Client.raw_insert`` for one request."""
    return {
        "table": f"`{config.database}`.`{table}`",
        "column_names": list(columns) or None,
        "insert_block": body,
        "settings": {**settings, **server_insert_settings(config)},
        "fmt": fmt,
    }


class ServerStore(Store):
    """A ClickHouse server or cluster over HTTP(S) with clickhouse-connect."""

    def __init__(self, config: ClickHouseConfig) -> None:
        self.config = config
        self.database = config.database
        self._client: Any = None
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        with self._lock:
            if self._client is None:
                import clickhouse_connect

                try:
                    self._client = clickhouse_connect.get_client(**server_client_kwargs(self.config))
                except Exception as e:
                    raise classify(e) from e
            return self._client

    def execute(self, sql: str) -> None:
        try:
            # DDL is fully qualified and may create the database the client names.
            self._connect().command(sql, use_database=False)
        except StoreError:
            raise
        except Exception as e:
            raise classify(e) from e

    def insert_request(
        self,
        table: str,
        body: bytes,
        settings: Mapping[str, SettingValue],
        fmt: str = "ProtobufSingle",
        columns: Sequence[str] = (),
    ) -> None:
        client = self._connect()
        try:
            client.raw_insert(**raw_insert_arguments(self.config, table, body, settings, fmt, columns))
        except Exception as e:
            raise classify(e) from e

    def query(self, sql: str, fmt: str, readonly: bool = True, use_database: bool = True) -> bytes:
        client = self._connect()
        try:
            settings = {"readonly": 1} if readonly else None
            data: bytes = client.raw_query(sql, settings=settings, fmt=fmt, use_database=use_database)
        except Exception as e:
            raise classify(e) from e
        return data

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                with contextlib.suppress(Exception):
                    self._client.close()
                self._client = None


def open_store(config: ClickHouseConfig, readonly: bool = False) -> Store:
    if config.embedded:
        return EmbeddedStore(config.embedded_path, config.database, readonly=readonly)
    return ServerStore(config)
