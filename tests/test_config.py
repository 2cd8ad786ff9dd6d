"""One test per class of config error: each message names the file and the offending key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import tests.components  # noqa: F401  (registers the `recording` exporter)
from otel_receiver.config import ConfigError, load_config, parse_config

BASE = """
receivers:
  otlp:
    protocols:
      grpc:
      http: {endpoint: "127.0.0.1:4318"}
exporters:
  recording:
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [recording]}
"""


def check_error(text: str, *fragments: str) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "conf.yaml")
    message = str(err.value)
    assert message.startswith("conf.yaml: "), message
    for f in fragments:
        assert f in message, message
    return message


def test_valid_config_with_defaults() -> None:
    cfg = parse_config(BASE, "conf.yaml")
    rc = cfg.receivers["otlp"]
    assert rc.protocols.grpc is not None and rc.protocols.grpc.endpoint == "127.0.0.1:4317"
    assert rc.max_request_bytes == 64 * 1024 * 1024
    assert cfg.pipelines["traces"].exporters == ("recording",)


def test_unknown_top_level_key() -> None:
    check_error(BASE + "extensionz: {}\n", "extensionz", "unknown key")


def test_unknown_key_in_receiver() -> None:
    text = BASE.replace("http: {endpoint", "http: {colour: red, endpoint")
    check_error(text, "receivers.otlp.protocols.http.colour", "unknown key")


def test_unknown_key_in_component_config() -> None:
    check_error(BASE.replace("  recording:\n", "  recording: {nmae: x}\n"), "exporters.recording.nmae")


def test_unknown_component_type() -> None:
    text = BASE.replace("  recording:\n", "  recording:\n  kafka:\n")
    check_error(text, "exporters.kafka", "unknown exporter type 'kafka'")


def test_unknown_receiver_type() -> None:
    check_error(BASE.replace("  otlp:\n    protocols", "  jaeger:\n    protocols"), "receivers.jaeger")


def test_bad_value_type() -> None:
    text = BASE.replace("  recording:\n", "  recording: {delay: soon}\n")
    check_error(text, "exporters.recording.delay")


def test_bad_endpoint() -> None:
    check_error(BASE.replace('"127.0.0.1:4318"', '"localhost"'), "receivers.otlp.protocols.http.endpoint")


def test_pipeline_references_undefined_component() -> None:
    text = BASE.replace("exporters: [recording]", "exporters: [recording, clickhouse/missing]")
    check_error(text, "service.pipelines.traces.exporters", "clickhouse/missing")


def test_pipeline_name_must_be_a_signal() -> None:
    check_error(BASE.replace("    traces: {", "    spans: {"), "service.pipelines.spans")


def test_named_instances_and_pipelines() -> None:
    text = BASE.replace("  recording:\n", "  recording:\n  recording/second: {name: two}\n").replace(
        "    traces: {receivers: [otlp], exporters: [recording]}",
        "    traces: {receivers: [otlp], exporters: [recording]}\n"
        "    traces/copy: {receivers: [otlp], exporters: [recording/second]}",
    )
    cfg = parse_config(text)
    assert set(cfg.pipelines) == {"traces", "traces/copy"}
    check_error(BASE.replace("  recording:\n", "  recording/a/b:\n"), "recording/a/b")


def test_env_substitution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTLP_HTTP", "127.0.0.1:9999")
    monkeypatch.setenv("REQ_LIMIT", "2048")
    text = BASE.replace('"127.0.0.1:4318"', '"${env:OTLP_HTTP}"').replace(
        "    protocols:", "    max_request_bytes: ${env:REQ_LIMIT}\n    protocols:"
    )
    text = text.replace("grpc:\n", 'grpc: {endpoint: "${env:NOT_SET_ANYWHERE:-127.0.0.1:5555}"}\n')
    cfg = parse_config(text)
    rc = cfg.receivers["otlp"]
    assert rc.protocols.http is not None and rc.protocols.http.endpoint == "127.0.0.1:9999"
    assert rc.protocols.grpc is not None and rc.protocols.grpc.endpoint == "127.0.0.1:5555"
    assert rc.max_request_bytes == 2048


def test_missing_env_variable() -> None:
    text = BASE.replace('"127.0.0.1:4318"', '"${env:SURELY_UNSET_VARIABLE_42}"')
    check_error(text, "receivers.otlp.protocols.http.endpoint", "SURELY_UNSET_VARIABLE_42")


def test_invalid_yaml_names_line() -> None:
    check_error("receivers: [\n", "invalid YAML", "line")


def test_component_not_supporting_signal() -> None:
    from otel_receiver.component import ComponentConfig, Factory, Processor, Signal
    from otel_receiver.registry import REGISTRY

    REGISTRY.register(
        "processors", Factory("traces_only", ComponentConfig, Processor, signals=frozenset({Signal.TRACES}))
    )
    text = BASE.replace("exporters:\n", "processors:\n  traces_only:\nexporters:\n", 1).replace(
        "    traces: {receivers: [otlp], exporters: [recording]}",
        "    metrics: {receivers: [otlp], processors: [traces_only], exporters: [recording]}",
    )
    check_error(text, "service.pipelines.metrics.processors", "does not support metrics")


def test_auth_config_validation() -> None:
    text = BASE.replace(
        "    protocols:", "    auth: {api_keys: [{key_sha256: abc, tenant: t}]}\n    protocols:"
    )
    check_error(text, "receivers.otlp.auth.api_keys.0")


def test_validate_cli_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(BASE.replace("  recording:\n", "  debug:\n").replace("[recording]", "[debug]"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        BASE.replace("  recording:\n", "  debug: {verbosityy: basic}\n").replace("[recording]", "[debug]")
    )
    ok = subprocess.run(
        [sys.executable, "-m", "otel_receiver.cli", "validate", "--config", str(good)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    fail = subprocess.run(
        [sys.executable, "-m", "otel_receiver.cli", "validate", "--config", str(bad)],
        capture_output=True,
        text=True,
    )
    assert fail.returncode == 2
    assert f"{bad}: exporters.debug.verbosityy" in fail.stderr


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config("/nonexistent/conf.yaml")


def test_builtin_default_is_valid() -> None:
    cfg = load_config(None)
    assert cfg.source == "<built-in default>"
    assert set(cfg.pipelines) == {"traces", "metrics", "logs"}


def test_audit_trail_must_name_an_exporter_a_pipeline_uses() -> None:
    with_audit = BASE.replace("exporters:\n", "processors:\n  audit: {trail: {exporter: EXP}}\nexporters:\n")
    with_audit = with_audit.replace("exporters: [recording]}", "processors: [audit], exporters: [recording]}")
    check_error(
        with_audit.replace("EXP", "clickhouse"),
        "processors.audit.trail.exporter",
        "'clickhouse'",
        "not defined",
    )
    unused = with_audit.replace("EXP", "spare").replace(
        "  recording:\n", "  recording:\n  recording/spare:\n"
    )
    check_error(unused.replace("exporter: spare", "exporter: recording/spare"), "used by no pipeline")
    assert parse_config(with_audit.replace("EXP", "recording"), "conf.yaml").processors["audit"]
