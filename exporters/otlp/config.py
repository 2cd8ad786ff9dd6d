"""Config of the ``otlp`` exporter (Jaeger, the OpenTelemetry Collector, any OTLP backend)."""

from __future__ import annotations

import ipaddress
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from otel_receiver.component import ComponentConfig, ExporterConfig

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class TlsClientConfig(ComponentConfig):
    insecure: bool | None = Field(
        default=None,
        description="plaintext, no TLS. Default: plaintext for loopback endpoints and http:// URLs, "
        "TLS for everything else",
    )
    ca_file: str | None = Field(
        default=None, description="PEM CA bundle that signs the server certificate (default: system roots)"
    )
    cert_file: str | None = Field(default=None, description="PEM client certificate, for mutual TLS")
    key_file: str | None = Field(default=None, description="PEM private key of cert_file")
    server_name_override: str | None = Field(
        default=None, description="name to verify the server certificate against instead of the endpoint host"
    )

    @model_validator(mode="after")
    def _pair(self) -> TlsClientConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file must be set together")
        if self.insecure and (self.ca_file or self.cert_file):
            raise ValueError("tls.insecure: true contradicts tls.ca_file / tls.cert_file")
        return self


class OtlpExporterConfig(ExporterConfig):
    endpoint: str = Field(
        min_length=1,
        description="gRPC: host:port (or http(s)://host:port); HTTP: base URL, /v1/traces etc. are appended",
    )
    protocol: Literal["grpc", "http"] = Field(default="grpc", description="OTLP/gRPC or OTLP/HTTP (protobuf)")
    tls: TlsClientConfig = TlsClientConfig()
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="sent with every request (gRPC metadata / HTTP headers), e.g. authorization",
    )
    compression: Literal["gzip", "none"] = Field(default="gzip", description="request body compression")
    traces_endpoint: str | None = Field(default=None, description="HTTP only: full URL for traces")
    metrics_endpoint: str | None = Field(default=None, description="HTTP only: full URL for metrics")
    logs_endpoint: str | None = Field(default=None, description="HTTP only: full URL for logs")

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not name or any(c in name for c in " \t\r\n:") or any(c in value for c in "\r\n"):
                raise ValueError(f"invalid header {name!r}")
        return headers

    @model_validator(mode="after")
    def _endpoint_shape(self) -> OtlpExporterConfig:
        if self.protocol == "http":
            for url in (self.endpoint, self.traces_endpoint, self.metrics_endpoint, self.logs_endpoint):
                if url is not None and urlsplit(url).scheme not in ("http", "https"):
                    raise ValueError(f"protocol http needs http:// or https:// URLs, got {url!r}")
        else:
            if any((self.traces_endpoint, self.metrics_endpoint, self.logs_endpoint)):
                raise ValueError(
                    "traces_endpoint/metrics_endpoint/logs_endpoint apply to protocol: http only"
                )
            host, port = grpc_target(self.endpoint)
            if not host or not port.isdigit():
                raise ValueError(f"gRPC endpoint must be host:port, got {self.endpoint!r}")
        return self

    def uses_tls(self) -> bool:
        if self.tls.insecure is not None:
            return not self.tls.insecure
        if self.tls.ca_file or self.tls.cert_file:
            return True
        scheme = urlsplit(self.endpoint).scheme if "://" in self.endpoint else ""
        if scheme in ("http", "https"):
            return scheme == "https"
        return not is_loopback(grpc_target(self.endpoint)[0])


def grpc_target(endpoint: str) -> tuple[str, str]:
    """(host, port) of a gRPC endpoint written ``host:port`` or ``scheme://host:port``."""
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        return parts.hostname or "", str(parts.port or "")
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), port


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
