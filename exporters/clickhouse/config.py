"""Configuration of the ``clickhouse`` exporter."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from otel_receiver.component import ComponentConfig, ExporterConfig, QueueBatchConfig, QueueConfig

from .schema import IDENTIFIER, parse_ttl

EMBEDDED_PREFIX = "embedded:"
DEFAULT_QUERY_ENDPOINT = "127.0.0.1:9181"


class TLSConfig(ComponentConfig):
    """TLS towards a ClickHouse server (``https://`` endpoints)."""

    insecure_skip_verify: bool = Field(default=False, description="do not verify the server certificate")
    ca_file: str | None = Field(default=None, description="CA bundle that signed the server certificate")
    cert_file: str | None = Field(default=None, description="client certificate (mutual TLS)")
    key_file: str | None = Field(default=None, description="key of the client certificate")
    server_name_override: str | None = Field(default=None, description="expected server host name (SNI)")

    @model_validator(mode="after")
    def _pair(self) -> TLSConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file go together")
        return self


class ClickHouseConfig(ExporterConfig):
    """Where and how to store traces, metrics and logs in ClickHouse."""

    endpoint: str = Field(
        default=EMBEDDED_PREFIX + "./otel-data",
        description="embedded:PATH (chDB in-process) or http(s)://host:port of a ClickHouse server",
    )
    database: str = Field(default="otel", description="database of the tables (created if missing)")
    username: str = Field(default="default", description="server user (server endpoints only)")
    password: str = Field(default="", description="server password (server endpoints only)")
    ttl: str = Field(default="0", description="retention, e.g. 72h or 30d; 0 keeps data forever")
    create_schema: bool = Field(default=True, description="create the database, tables and views at start")
    cluster: str | None = Field(
        default=None,
        description="ClickHouse cluster name: DDL runs ON CLUSTER with Replicated and Distributed tables",
    )
    compression: Literal["lz4", "zstd", "gzip", "br", "none"] = Field(
        default="lz4", description="HTTP compression of inserts to a server"
    )
    async_insert: bool = Field(
        default=False, description="let the server buffer inserts (async_insert=1, wait_for_async_insert=1)"
    )
    tls: TLSConfig = TLSConfig()
    row_encoder: Literal["auto", "native", "sql"] = Field(
        default="auto",
        description="how span and log rows are built: native = in C as a Native block (about half "
        "the engine's CPU per row), sql = by ClickHouse views from the serialized request; auto = "
        "native when the C encoder is built",
    )
    query_endpoint: str | None = Field(
        default=DEFAULT_QUERY_ENDPOINT,
        description="host:port of the read-only SQL endpoint the CLI uses while the receiver runs; "
        "null disables it (embedded stores only)",
    )
    # ClickHouse wants few, large inserts: coalesce queued requests (10,000 items or 1 s;
    # a backlog up to 50,000: each insert has a fixed cost of ~80 ms, see README "Sizing").
    sending_queue: QueueConfig = QueueConfig(
        batch=QueueBatchConfig(enabled=True, min_size=10_000, max_size=50_000, flush_timeout=1.0)
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        if v.startswith(EMBEDDED_PREFIX):
            if not v[len(EMBEDDED_PREFIX) :].strip():
                raise ValueError("embedded: needs a directory, e.g. embedded:./otel-data")
            return v
        if v.startswith(("http://", "https://")):
            return v
        raise ValueError("endpoint must be embedded:PATH or http(s)://host:port")

    @field_validator("cluster", mode="before")
    @classmethod
    def _empty_cluster_is_none(cls, v: object) -> object:
        # `cluster: ${env:CLICKHOUSE_CLUSTER:-}` lets one config serve single servers and clusters
        return None if v == "" else v

    @field_validator("database", "cluster")
    @classmethod
    def _identifier(cls, v: str | None) -> str | None:
        if v is not None and not IDENTIFIER.match(v):
            raise ValueError(f"{v!r} must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*)")
        return v

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, v: str) -> str:
        parse_ttl(v)
        return v

    @field_validator("query_endpoint")
    @classmethod
    def _query_endpoint(cls, v: str | None) -> str | None:
        if v is None:
            return v
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("query_endpoint must be host:port")
        return v

    @model_validator(mode="after")
    def _embedded_only_options(self) -> ClickHouseConfig:
        if self.embedded and self.cluster:
            raise ValueError("cluster needs a ClickHouse server endpoint, not embedded:")
        return self

    @model_validator(mode="after")
    def _native_encoder_built(self) -> ClickHouseConfig:
        from . import native

        if self.row_encoder == "native" and not native.available():
            raise ValueError(
                "row_encoder: native needs the C row encoder, which this install lacks "
                "(reinstall with a C compiler, or use auto or sql)"
            )
        return self

    @property
    def native_rows(self) -> bool:
        """Whether span and log rows are built by the C encoder."""
        from . import native

        return self.row_encoder == "native" or (self.row_encoder == "auto" and native.available())

    @property
    def embedded(self) -> bool:
        return self.endpoint.startswith(EMBEDDED_PREFIX)

    @property
    def embedded_path(self) -> str:
        return self.endpoint[len(EMBEDDED_PREFIX) :]

    @property
    def ttl_seconds(self) -> int:
        return parse_ttl(self.ttl)
