"""The Helm chart (helm/otel-genai-receiver) and the image it runs (Dockerfile).

Helm's own engine renders and lints the chart (the helm-python-sdk wheel: Helm's Go SDK as
a library, no cluster). No Kubernetes and no Docker run on the development machines, so
what a cluster would do is checked at its seams: the rendered receiver config passes the
receiver's own validation, ports and probes agree across config, container and Services,
the gateway and alert rules are the files collector-config/ ships, and the Dockerfile's
build steps (its COPY list, then `pip install .`) produce a receiver that runs the
rendered config and answers the probes' requests.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_receiver.config import parse_config
from tests.conftest import free_port
from tests.test_receiver_protocol import http_post

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "otel-genai-receiver"
RELEASE, NAMESPACE = "genai", "observability"
FULLNAME = "genai-otel-genai-receiver"
SERVER_STORE = {"config": {"exporters": {"clickhouse": {"endpoint": "https://clickhouse.db.svc:8443"}}}}
EVERYTHING_ON: dict[str, Any] = {
    **SERVER_STORE,
    "autoscaling": {"enabled": True},
    "gateway": {"enabled": True},
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
}


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    rendered = helm.Chart.load(CHART).render(values, name=RELEASE, namespace=NAMESPACE)
    documents: list[dict[str, Any]] = []
    for path, text in rendered.items():
        if not path.endswith(".yaml"):
            continue  # NOTES.txt
        documents.extend(d for d in yaml.safe_load_all(text) if d)
    return documents


def find(documents: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [d for d in documents if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, f"{len(matches)} {kind} named {name}"
    return matches[0]


def kinds(documents: list[dict[str, Any]]) -> set[str]:
    return {d["kind"] for d in documents}


def receiver_config(documents: list[dict[str, Any]]) -> str:
    text: str = find(documents, "ConfigMap", FULLNAME)["data"]["config.yaml"]
    return text


def container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    statefulset = find(documents, "StatefulSet", FULLNAME)
    (receiver,) = statefulset["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = receiver
    return result


def test_lint_is_clean_with_defaults_and_with_every_option_on() -> None:
    for values in (None, EVERYTHING_ON):
        report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE)
        assert report["errors"] == []
        # severity 1 is "info" (the chart has no icon); warnings and errors fail
        assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


def test_default_release_is_one_replica_on_a_persistent_embedded_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    documents = render()
    assert kinds(documents) == {"ConfigMap", "Service", "ServiceAccount", "StatefulSet", "Pod"}
    # `helm test` asks the Service's /health on the HTTP port
    hook = find(documents, "Pod")
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert hook["spec"]["containers"][0]["command"][-1] == f"http://{FULLNAME}:4318/health"
    statefulset = find(documents, "StatefulSet", FULLNAME)
    assert statefulset["spec"]["replicas"] == 1
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    receiver = container(documents)
    env = {e["name"]: e.get("value") for e in receiver["env"]}
    data_mount = next(m for m in receiver["volumeMounts"] if m["name"] == "data")
    assert env["OTEL_RECEIVER_DATA"] == data_mount["mountPath"] == "/var/lib/otel-receiver"

    monkeypatch.setenv("OTEL_RECEIVER_DATA", env["OTEL_RECEIVER_DATA"])
    config = parse_config(receiver_config(documents), "rendered ConfigMap")
    clickhouse = config.exporters["clickhouse"].config
    assert clickhouse.endpoint == "embedded:/var/lib/otel-receiver"  # type: ignore[attr-defined]
    assert config.unused == ()
    assert set(config.processors) == {
        "genai_normalize", "pii_redaction", "audit", "genai_cost", "anomaly", "batch"
    }  # fmt: skip


def test_ports_agree_across_config_container_services_and_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    documents = render({"ports": {"otlpGrpc": 14317, "otlpHttp": 14318, "metrics": 19464}})
    monkeypatch.setenv("OTEL_RECEIVER_DATA", "/var/lib/otel-receiver")
    config = parse_config(receiver_config(documents), "rendered ConfigMap")
    otlp = config.receivers["otlp"].protocols
    assert otlp.grpc is not None and otlp.grpc.endpoint == "0.0.0.0:14317"
    assert otlp.http is not None and otlp.http.endpoint == "0.0.0.0:14318"
    assert config.exporters["prometheus"].config.endpoint == "0.0.0.0:19464"  # type: ignore[attr-defined]

    receiver = container(documents)
    ports = {p["name"]: p["containerPort"] for p in receiver["ports"]}
    assert ports == {"otlp-grpc": 14317, "otlp-http": 14318, "metrics": 19464}
    for probe in ("startupProbe", "readinessProbe"):
        assert receiver[probe]["httpGet"] == {"path": "/health", "port": "otlp-http", "scheme": "HTTP"}
    assert receiver["livenessProbe"]["tcpSocket"] == {"port": "otlp-http"}
    service = find(documents, "Service", FULLNAME)
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        name: (port, name) for name, port in ports.items()
    }
    headless = find(documents, "Service", f"{FULLNAME}-headless")
    assert headless["spec"]["clusterIP"] == "None"
    statefulset = find(documents, "StatefulSet", FULLNAME)
    assert statefulset["spec"]["serviceName"] == headless["metadata"]["name"]
    for svc in (service, headless):
        assert svc["spec"]["selector"] == statefulset["spec"]["selector"]["matchLabels"]


def test_several_replicas_on_an_embedded_store_are_refused_with_the_reason() -> None:
    for values in ({"replicaCount": 2}, {"autoscaling": {"enabled": True}}):
        with pytest.raises(helm.HelmRenderError, match="embedded ClickHouse store belongs to one process"):
            render(values)


def test_scaled_out_release_autoscales_with_a_claim_per_replica() -> None:
    documents = render({**SERVER_STORE, "autoscaling": {"enabled": True, "maxReplicas": 6}})
    statefulset = find(documents, "StatefulSet", FULLNAME)
    assert "replicas" not in statefulset["spec"]  # the autoscaler owns it
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    hpa = find(documents, "HorizontalPodAutoscaler", FULLNAME)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": FULLNAME}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    pdb = find(documents, "PodDisruptionBudget", FULLNAME)
    assert pdb["spec"]["selector"]["matchLabels"] == statefulset["spec"]["selector"]["matchLabels"]
    # one replica: no budget, which would block every node drain
    assert "PodDisruptionBudget" not in kinds(render())

    with pytest.raises(helm.HelmRenderError, match="existingClaim is one volume for one replica"):
        render({**SERVER_STORE, "replicaCount": 3, "persistence": {"existingClaim": "shared"}})


def test_user_config_merges_into_the_default_and_null_removes_a_component(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    without_pii = {
        signal: {
            "receivers": ["otlp"],
            "processors": [p for p in processors if p != "pii_redaction"],
            "exporters": ["clickhouse", "prometheus"],
        }
        for signal, processors in (
            ("traces", ["genai_normalize", "pii_redaction", "audit", "genai_cost", "anomaly", "batch"]),
            ("metrics", ["genai_normalize", "pii_redaction", "audit", "batch"]),
            ("logs", ["genai_normalize", "pii_redaction", "audit", "batch"]),
        )
    }
    values: dict[str, Any] = {
        "config": {
            "receivers": {"otlp": {"auth": {"api_keys": [{"key": "${env:INGEST_KEY}", "tenant": "acme"}]}}},
            "processors": {
                "pii_redaction": None,
                "genai_cost": {"overrides": [{"name": "acme-deal", "model": "gpt-4o", "input_mtok": "2"}]},
            },
            "service": {"pipelines": without_pii},
        },
        "extraEnv": [{"name": "INGEST_KEY", "valueFrom": {"secretKeyRef": {"name": "ingest", "key": "key"}}}],
    }
    documents = render(values)
    text = receiver_config(documents)
    assert "${env:INGEST_KEY}" in text  # the secret stays out of the ConfigMap
    monkeypatch.setenv("OTEL_RECEIVER_DATA", "/var/lib/otel-receiver")
    monkeypatch.setenv("INGEST_KEY", "k" * 32)
    config = parse_config(text, "rendered ConfigMap")
    assert "pii_redaction" not in config.processors
    (override,) = config.processors["genai_cost"].config.overrides  # type: ignore[attr-defined]
    assert override.name == "acme-deal"
    assert config.receivers["otlp"].auth is not None
    assert config.receivers["otlp"].protocols.grpc is not None  # the defaults merged under the user's keys
    env = {e["name"]: e for e in container(documents)["env"]}
    assert env["INGEST_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "ingest", "key": "key"}

    # removing a component that a pipeline still names fails the install, not the pod
    del values["config"]["service"]["pipelines"]["logs"]
    dangling = 'pipelines.logs.processors: "pii_redaction" is not defined under config.processors'
    with pytest.raises(helm.HelmRenderError, match=re.escape(dangling)):
        render(values)


def test_values_schema_names_the_offending_key() -> None:
    with pytest.raises(helm.HelmValuesError, match="replicaCount"):
        render({"replicaCount": 0})
    with pytest.raises(helm.HelmValuesError, match="'replicas' not allowed"):
        render({"replicas": 2})
    with pytest.raises(helm.HelmValuesError, match="otlpHttp"):
        render({"ports": {"otlpHttp": 70000}})
    with pytest.raises(helm.HelmRenderError, match=re.escape("protocols.http is required")):
        render({"config": {"receivers": {"otlp": {"protocols": {"http": None}}}}})


def test_gateway_is_the_shipped_collector_config_pointed_at_this_release() -> None:
    documents = render(EVERYTHING_ON)
    gateway_name = f"{FULLNAME}-gateway"
    rendered = yaml.safe_load(find(documents, "ConfigMap", gateway_name)["data"]["config.yaml"])
    shipped = yaml.safe_load((REPO / "collector-config" / "loadbalancing-gateway.yaml").read_text())
    dns = rendered["exporters"]["loadbalancing"]["resolver"]["dns"]
    headless = find(documents, "Service", f"{FULLNAME}-headless")
    assert dns["hostname"] == f"{headless['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
    assert dns["port"] == next(p["port"] for p in headless["spec"]["ports"] if p["name"] == "otlp-grpc")
    shipped_dns = shipped["exporters"]["loadbalancing"]["resolver"]["dns"]
    shipped_dns.update(hostname=dns["hostname"], port=dns["port"])
    assert rendered == shipped

    deployment = find(documents, "Deployment", gateway_name)
    (collector,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in collector["ports"]}
    health_port = int(rendered["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1])
    assert ports["health"] == health_port
    for protocol, port in (("grpc", ports["otlp-grpc"]), ("http", ports["otlp-http"])):
        assert rendered["receivers"]["otlp"]["protocols"][protocol]["endpoint"] == f"0.0.0.0:{port}"
    assert collector["args"] == ["--config=/etc/otelcol-contrib/config.yaml"]
    mount = next(m for m in collector["volumeMounts"] if m["name"] == "config")
    assert mount["mountPath"] == "/etc/otelcol-contrib"
    service = find(documents, "Service", gateway_name)
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    receiver_service = find(documents, "Service", FULLNAME)
    assert service["spec"]["selector"] != receiver_service["spec"]["selector"]


def test_prometheus_operator_objects_carry_the_shipped_alerts_and_the_metrics_port() -> None:
    documents = render(EVERYTHING_ON)
    rule = find(documents, "PrometheusRule", FULLNAME)
    shipped = yaml.safe_load((REPO / "collector-config" / "prometheus" / "alerts.yaml").read_text())
    assert rule["spec"]["groups"] == shipped["groups"]
    # alert templates reach Prometheus untouched, not expanded by Helm
    annotations = [str(r.get("annotations")) for g in rule["spec"]["groups"] for r in g["rules"]]
    assert any("{{ $labels.kind }}" in a for a in annotations)
    monitor = find(documents, "ServiceMonitor", FULLNAME)
    (endpoint,) = monitor["spec"]["endpoints"]
    service = find(documents, "Service", FULLNAME)
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def _dockerfile_build_context(destination: Path) -> None:
    """Copy what the Dockerfile's build stage COPYs, and only that."""
    text = (REPO / "Dockerfile").read_text()
    build_stage = text.split("\nFROM ", 2)[1]
    copies = re.findall(r"^COPY (?!--from)(.+)$", build_stage, flags=re.MULTILINE)
    assert copies, "the build stage copies nothing"
    for line in copies:
        *sources, _target = line.split()
        for source in sources:
            path = REPO / source
            if path.is_dir():
                shutil.copytree(path, destination / source, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(path, destination / source)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.slow
def test_image_build_steps_give_a_receiver_that_serves_the_rendered_pod(tmp_path: Path) -> None:
    context, site = tmp_path / "context", tmp_path / "site"
    context.mkdir()
    _dockerfile_build_context(context)
    # the Dockerfile's `pip install .`, without dependencies (they are in this venv already)
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "--target", str(site), str(context)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}
    # the build stage compiles the C extensions (its gcc) and the image carries them
    imports = (
        "import otel_receiver, processors, exporters, semconv; from exporters.clickhouse import native; "
        "from otel_receiver import spanscan; from processors.anomaly import detector; "
        "assert native.available() and spanscan.available() and detector._native is not None; "
        "print(semconv.__file__)"
    )
    where = subprocess.run(
        [sys.executable, "-c", imports],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(site)), "the test must run the installed copy, not the repository"

    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    data = tmp_path / "data"
    documents = render({"ports": {"otlpGrpc": grpc_port, "otlpHttp": http_port, "metrics": metrics_port},
                        "dataDir": str(data)})  # fmt: skip
    receiver = container(documents)
    config_mount = next(m for m in receiver["volumeMounts"] if m["name"] == "config")["mountPath"]
    config_path = tmp_path / "etc" / "config.yaml"
    assert receiver["args"] == ["run", "--config", f"{config_mount}/config.yaml"]
    config_path.parent.mkdir()
    config_path.write_text(receiver_config(documents))
    pod_env = {e["name"]: e["value"] for e in receiver["env"] if "value" in e}
    pod_env["TMPDIR"] = str(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_receiver.cli", "run", "--config", str(config_path)],
        env={**env, **pod_env}, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        probe = receiver["readinessProbe"]["httpGet"]
        port = {p["name"]: p["containerPort"] for p in receiver["ports"]}[probe["port"]]
        deadline = time.monotonic() + 120
        status = 0
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status, _ = _get(f"http://127.0.0.1:{port}{probe['path']}")
            except OSError:
                status = 0
            if status == 200:
                break
            time.sleep(0.3)
        assert status == 200, f"readiness probe never passed (exit {process.poll()})"

        request = ExportTraceServiceRequest()
        span = request.resource_spans.add().scope_spans.add().spans.add()
        span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, "chat"
        span.start_time_unix_nano = 1_700_000_000_000_000_000
        span.end_time_unix_nano = span.start_time_unix_nano + 1_000_000_000
        assert http_post(f"http://127.0.0.1:{http_port}", "/v1/traces", request.SerializeToString())[0] == 200
        status, body = _get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200 and b"otel_receiver_received_items_total" in body
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    # state under dataDir (the pod's volume): baselines snapshotted at shutdown, and the span
    # in the embedded store, read the way NOTES.txt tells users to (`query --config`)
    assert (data / "anomaly-baselines.json").is_file()
    query = subprocess.run(
        [sys.executable, "-m", "otel_receiver.cli", "query", "--config", str(config_path), "--format", "json",
         "SELECT SpanName FROM otel.otel_traces"],
        env={**env, **pod_env}, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert query.returncode == 0, query.stderr
    assert query.stdout.splitlines() == ['{"SpanName":"chat"}'], query.stdout
    # the audit chain of that run (open and close records) verifies against its anchors
    assert (data / "audit-anchors.jsonl").is_file()
    verify = subprocess.run(
        [sys.executable, "-m", "otel_receiver.cli", "audit-verify", "--config", str(config_path)],
        env={**env, **pod_env}, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "every anchored chain is stored up to its last anchor" in verify.stdout
