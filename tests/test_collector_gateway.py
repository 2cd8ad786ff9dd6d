"""The Collector gateway config shipped for scaling out (collector-config/).

No OpenTelemetry Collector binary runs on the development machines, so this checks
what can go wrong on our side without one: the file parses, every pipeline names
defined components, and the load-balancing exporter routes by service (the anomaly
baselines are per service) to the port our receivers listen on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from otel_receiver.config import GrpcProtocolConfig

GATEWAY = Path(__file__).resolve().parent.parent / "collector-config" / "loadbalancing-gateway.yaml"


def _config() -> dict[str, Any]:
    loaded = yaml.safe_load(GATEWAY.read_text())
    assert isinstance(loaded, dict)
    return loaded


def assert_pipelines_name_defined_components(config: dict[str, Any]) -> None:
    """A Collector config's pipelines and service extensions name only defined components."""
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics", "logs"}
    for name, pipeline in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"pipeline {name} names undefined {kind[:-1]} {component}"
    for extension in config["service"].get("extensions", []):
        assert extension in config["extensions"], f"service names undefined extension {extension}"


def test_pipelines_name_defined_components() -> None:
    assert_pipelines_name_defined_components(_config())


def test_routes_by_service_to_the_receivers_grpc_port() -> None:
    exporter = _config()["exporters"]["loadbalancing"]
    assert exporter["routing_key"] == "service"
    receiver_port = int(GrpcProtocolConfig().endpoint.rsplit(":", 1)[1])
    assert exporter["resolver"]["dns"]["port"] == receiver_port
    otlp = exporter["protocol"]["otlp"]
    assert otlp["retry_on_failure"]["enabled"] and otlp["sending_queue"]["enabled"]
