"""Loading and validating the YAML config (DESIGN.md, "Config").

Shaped like the OpenTelemetry Collector's: ``receivers``, ``processors``,
``exporters`` and ``service.pipelines``, components named ``type`` or ``type/name``,
``${env:VAR}`` and ``${env:VAR:-default}`` substitution in values. Every error names
the file and the dotted path of the offending key.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from otel_receiver.auth import AuthConfig
from otel_receiver.component import ComponentConfig, Signal
from otel_receiver.registry import REGISTRY, ComponentLoadError, Registry, UnknownComponentError

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default.yaml")
MIB = 1024 * 1024


class ConfigError(ValueError):
    """A config problem; the message names the file and the key."""


class TlsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: str
    key_file: str
    client_ca_file: str | None = Field(default=None, description="require client certificates (mTLS)")


class GrpcProtocolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str = "127.0.0.1:4317"
    tls: TlsConfig | None = None
    max_concurrent_streams: int = Field(default=0, ge=0, description="0 = gRPC default")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        return _check_host_port(v)


class HttpProtocolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str = "127.0.0.1:4318"
    tls: TlsConfig | None = None

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        return _check_host_port(v)


class ProtocolsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    grpc: GrpcProtocolConfig | None = None
    http: HttpProtocolConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _present_means_enabled(cls, data: Any) -> Any:
        # Collector style: `grpc:` with no value enables the protocol with its defaults.
        if isinstance(data, dict):
            return {k: ({} if v is None else v) for k, v in data.items()}
        return data


class OtlpReceiverConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    protocols: ProtocolsConfig = ProtocolsConfig(grpc=GrpcProtocolConfig(), http=HttpProtocolConfig())
    max_request_bytes: int = Field(
        default=64 * MIB, ge=1024, description="limit on a request, compressed and decompressed"
    )
    auth: AuthConfig | None = None
    trust_audit_attributes: bool = Field(
        default=False,
        description="keep audit.* attributes clients send (only behind a receiver tier that "
        "authenticated them and wrote those attributes itself); by default they are removed",
    )

    @model_validator(mode="after")
    def _one_protocol(self) -> OtlpReceiverConfig:
        if self.protocols.grpc is None and self.protocols.http is None:
            raise ValueError("protocols: enable at least one of grpc, http")
        return self


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    receivers: list[str] = Field(min_length=1)
    processors: list[str] = []
    exporters: list[str] = Field(min_length=1)


class LogsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    level: Literal["debug", "info", "warning", "error"] = "info"
    encoding: Literal["console", "json"] = "console"


class TelemetryConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    logs: LogsConfig = LogsConfig()


class ServiceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pipelines: dict[str, PipelineConfig] = Field(min_length=1)
    telemetry: TelemetryConfig = TelemetryConfig()
    shutdown_timeout: float = Field(
        default=30.0, gt=0, description="seconds to drain queues on shutdown before giving up"
    )


class _RawConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    receivers: dict[str, dict[str, Any] | None] = Field(min_length=1)
    processors: dict[str, dict[str, Any] | None] = {}
    exporters: dict[str, dict[str, Any] | None] = Field(min_length=1)
    service: ServiceConfig


@dataclass(frozen=True)
class ComponentEntry:
    component_id: str  # as written: "type" or "type/name"
    type_name: str
    config: ComponentConfig


@dataclass(frozen=True)
class Pipeline:
    pipeline_id: str
    signal: Signal
    receivers: tuple[str, ...]
    processors: tuple[str, ...]
    exporters: tuple[str, ...]


@dataclass(frozen=True)
class Config:
    source: str  # file path, or "<built-in default>"
    receivers: dict[str, OtlpReceiverConfig]
    processors: dict[str, ComponentEntry]
    exporters: dict[str, ComponentEntry]
    pipelines: dict[str, Pipeline]
    service: ServiceConfig
    config_dir: str = "."
    unused: tuple[str, ...] = field(default=())


_ENV_RE = re.compile(r"\$\$|\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: Any, where: str, source: str) -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{where}.{k}" if where else str(k), source) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{where}[{i}]", source) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(2)
        env = os.environ.get(name)
        if env is not None and (env != "" or default is None):
            return env
        if default is not None:
            return default
        raise ConfigError(f"{source}: {where}: environment variable {name} is not set")

    expanded = _ENV_RE.sub(sub, value)
    # A value that is entirely one substitution takes the YAML type of the result, so
    # `port: ${env:PORT}` gives an int, as in the Collector.
    if _ENV_RE.fullmatch(value) and value != "$$":
        loaded = yaml.safe_load(expanded) if expanded else expanded
        if isinstance(loaded, (int, float, bool)):
            return loaded
    return expanded


def _format_validation_error(err: ValidationError, prefix: str, source: str) -> ConfigError:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        key = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{source}: {key}: {msg}")
    return ConfigError("\n".join(lines))


def _split_id(component_id: str) -> str:
    type_name, _, name = component_id.partition("/")
    if not type_name or (component_id.count("/") > 1) or ("/" in component_id and not name):
        raise ValueError(f"invalid component id {component_id!r} (expected 'type' or 'type/name')")
    return type_name


def load_config(path: str | os.PathLike[str] | None = None, registry: Registry = REGISTRY) -> Config:
    if path is None:
        return parse_config(DEFAULT_CONFIG_PATH.read_text(), "<built-in default>", ".", registry)
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read config: {e.strerror}") from None
    return parse_config(text, str(p), str(p.parent), registry)


def parse_config(
    text: str, source: str = "<string>", config_dir: str = ".", registry: Registry = REGISTRY
) -> Config:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{source}: invalid YAML{where}: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping with receivers, exporters and service")
    data = _expand_env(data, "", source)
    try:
        raw = _RawConfig.model_validate(data)
    except ValidationError as e:
        raise _format_validation_error(e, "", source) from None

    receivers: dict[str, OtlpReceiverConfig] = {}
    for rid, body in raw.receivers.items():
        _check_id("receivers", rid, source)
        if _split_id(rid) != "otlp":
            raise ConfigError(
                f"{source}: receivers.{rid}: unknown receiver type {_split_id(rid)!r}; known: otlp"
            )
        try:
            receivers[rid] = OtlpReceiverConfig.model_validate(body or {})
        except ValidationError as e:
            raise _format_validation_error(e, f"receivers.{rid}", source) from None

    processors = _components("processors", raw.processors, source, registry)
    exporters = _components("exporters", raw.exporters, source, registry)

    pipelines: dict[str, Pipeline] = {}
    used: set[str] = set()
    for pid, pc in raw.service.pipelines.items():
        where = f"service.pipelines.{pid}"
        sig_name = pid.partition("/")[0]
        try:
            signal = Signal(sig_name)
        except ValueError:
            raise ConfigError(
                f"{source}: {where}: pipeline must be named traces, metrics or logs (optionally /name)"
            ) from None
        for kind, ids, table in (
            ("receivers", pc.receivers, receivers),
            ("processors", pc.processors, processors),
            ("exporters", pc.exporters, exporters),
        ):
            if len(set(ids)) != len(ids):
                raise ConfigError(f"{source}: {where}.{kind}: a component is listed twice")
            for cid in ids:
                if cid not in table:
                    raise ConfigError(f"{source}: {where}.{kind}: {cid!r} is not defined under {kind}")
                used.add(f"{kind}.{cid}")
                if kind != "receivers":
                    entry = table[cid]
                    assert isinstance(entry, ComponentEntry)
                    factory = registry.factory(kind, entry.type_name)
                    if signal not in factory.signals:
                        raise ConfigError(
                            f"{source}: {where}.{kind}: {cid!r} does not support {signal.value} "
                            f"(supports: {', '.join(sorted(s.value for s in factory.signals))})"
                        )
        pipelines[pid] = Pipeline(pid, signal, tuple(pc.receivers), tuple(pc.processors), tuple(pc.exporters))

    for cid, entry in processors.items():
        for key, exporter_id in entry.config.exporter_references():
            if f"exporters.{exporter_id}" not in used:
                state = (
                    "is used by no pipeline" if exporter_id in exporters else "is not defined under exporters"
                )
                raise ConfigError(f"{source}: processors.{cid}.{key}: exporter {exporter_id!r} {state}")
    unused = tuple(
        f"{kind}.{cid}"
        for kind, table in (("receivers", receivers), ("processors", processors), ("exporters", exporters))
        for cid in table
        if f"{kind}.{cid}" not in used
    )
    return Config(source, receivers, processors, exporters, pipelines, raw.service, config_dir, unused)


def _check_id(kind: str, cid: str, source: str) -> None:
    try:
        _split_id(cid)
    except ValueError as e:
        raise ConfigError(f"{source}: {kind}.{cid}: {e}") from None


def _components(
    kind: str, table: dict[str, dict[str, Any] | None], source: str, registry: Registry
) -> dict[str, ComponentEntry]:
    out: dict[str, ComponentEntry] = {}
    for cid, body in table.items():
        _check_id(kind, cid, source)
        type_name = _split_id(cid)
        try:
            factory = registry.factory(kind, type_name)
        except (UnknownComponentError, ComponentLoadError) as e:
            raise ConfigError(f"{source}: {kind}.{cid}: {e}") from None
        try:
            cfg = factory.config_model.model_validate(body or {})
        except ValidationError as e:
            raise _format_validation_error(e, f"{kind}.{cid}", source) from None
        out[cid] = ComponentEntry(cid, type_name, cfg)
    return out


def _check_host_port(v: str) -> str:
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"endpoint must be host:port, got {v!r}")
    return v


def split_host_port(v: str) -> tuple[str, int]:
    host, _, port = v.rpartition(":")
    return host.strip("[]"), int(port)
