"""The ready configs of collector-config/: ours for production, the Collector agent's.

production.yaml is checked by the receiver's own validation with its variables set, and
through the Helm chart (the way the chart's README says to deploy it). No OpenTelemetry
Collector binary runs on the development machines, so agent.yaml is checked on our side:
its pipelines name defined components, and the header it sends authenticates against
the `auth` of production.yaml.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_receiver.auth import Authenticator
from otel_receiver.config import ConfigError, load_config, parse_config
from tests.test_collector_gateway import assert_pipelines_name_defined_components
from tests.test_helm_chart import container, find, receiver_config, render

CONFIGS = Path(__file__).resolve().parent.parent / "collector-config"
PRODUCTION = CONFIGS / "production.yaml"
INGEST_KEY = "ingest-key-0123456789abcdef0123456789"
PRODUCTION_ENV = {
    "OTEL_RECEIVER_TLS_CERT": "/etc/otel-receiver/tls/tls.crt",
    "OTEL_RECEIVER_TLS_KEY": "/etc/otel-receiver/tls/tls.key",
    "OTEL_RECEIVER_INGEST_KEY": INGEST_KEY,
    "OTEL_RECEIVER_TENANT": "acme",
    "CLICKHOUSE_ENDPOINT": "https://clickhouse.internal:8443",
    "CLICKHOUSE_PASSWORD": "s3cret",
    "PII_HASH_KEY": "p" * 40,
}


@pytest.fixture
def production_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_RECEIVER_DATA", "CLICKHOUSE_USER", "CLICKHOUSE_CLUSTER", "JAEGER_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(name, value)


def test_production_config_is_valid_and_keeps_its_promises(production_env: None) -> None:
    config = load_config(PRODUCTION)
    assert config.unused == ()
    otlp = config.receivers["otlp"]
    for protocol in (otlp.protocols.grpc, otlp.protocols.http):
        assert protocol is not None and protocol.tls is not None
        assert protocol.endpoint.startswith("0.0.0.0:")
    assert otlp.auth is not None and otlp.auth.api_keys[0].tenant == "acme"
    # persistent queues: a restart or kill -9 loses no acknowledged span
    for exporter_id in ("clickhouse", "otlp/jaeger"):
        queue = config.exporters[exporter_id].config.sending_queue  # type: ignore[attr-defined]
        assert queue.storage.startswith("/var/lib/otel-receiver/queue/")
    clickhouse = config.exporters["clickhouse"].config
    assert (clickhouse.endpoint, clickhouse.ttl, clickhouse.cluster) == (  # type: ignore[attr-defined]
        "https://clickhouse.internal:8443", "30d", None
    )  # fmt: skip
    assert config.processors["pii_redaction"].config.default_action == "hash"  # type: ignore[attr-defined]
    assert set(config.pipelines["traces"].exporters) == {"clickhouse", "prometheus", "otlp/jaeger"}


@pytest.mark.parametrize("missing", sorted(PRODUCTION_ENV))
def test_production_config_names_each_missing_variable(
    production_env: None, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.delenv(missing)
    with pytest.raises(ConfigError, match=f"environment variable {missing} is not set"):
        load_config(PRODUCTION)


def test_production_config_deploys_with_the_chart(production_env: None) -> None:
    values = {"config": yaml.safe_load(PRODUCTION.read_text()), "replicaCount": 3}
    documents = render(values)
    config = parse_config(receiver_config(documents), "rendered ConfigMap")
    assert config.unused == ()
    receiver = container(documents)
    # TLS on the HTTP port: the kubelet must probe over HTTPS
    assert receiver["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert receiver["startupProbe"]["httpGet"]["scheme"] == "HTTPS"
    hook = find(documents, "Pod")
    assert hook["spec"]["containers"][0]["command"][-1].startswith("https://")
    assert find(documents, "StatefulSet")["spec"]["replicas"] == 3


def _agent() -> dict[str, Any]:
    loaded = yaml.safe_load((CONFIGS / "agent.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_agent_pipelines_name_defined_components() -> None:
    config = _agent()
    assert_pipelines_name_defined_components(config)
    assert all(p["exporters"] == ["otlp/genai"] for p in config["service"]["pipelines"].values())


def test_agent_header_authenticates_against_the_production_auth(production_env: None) -> None:
    exporter = _agent()["exporters"]["otlp/genai"]
    assert exporter["retry_on_failure"]["enabled"] and exporter["sending_queue"]["enabled"]
    # the Collector expands ${env:...} in header values as our config loader does
    header = re.sub(r"\$\{env:OTEL_GENAI_RECEIVER_KEY\}", INGEST_KEY, exporter["headers"]["authorization"])
    auth = load_config(PRODUCTION).receivers["otlp"].auth
    assert auth is not None
    principal = Authenticator(auth).authenticate({"authorization": header})
    assert (principal.tenant, principal.roles) == ("acme", ("ingest",))
