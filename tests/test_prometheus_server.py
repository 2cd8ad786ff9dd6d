"""The /metrics endpoint over HTTP, and a real Prometheus scraping it end to end.

The Prometheus server is the Debian ``prometheus`` binary, started on a free loopback
port with a generated config and a temporary storage directory.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port
from opentelemetry.proto.metrics.v1 import metrics_pb2
from test_prometheus_helpers import (
    OPENMETRICS_ACCEPT,
    SpanSpec,
    make_exporter,
    metrics_request,
    number_metric,
    samples_of,
    trace_request,
    value,
)

import semconv
from otel_receiver.component import RequestContext

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def test_http_content_negotiation_and_gzip() -> None:
    exporter, _ = make_exporter()

    async def scenario() -> dict[str, tuple[int, dict[str, str], bytes]]:
        await exporter.start()
        try:
            await exporter.export(trace_request([SpanSpec(cost=0.25)]), RequestContext())
            url = exporter.url
            assert url.startswith("http://127.0.0.1:") and not url.startswith("http://127.0.0.1:0/")
            calls = {
                "plain": {},
                "openmetrics": {"Accept": OPENMETRICS_ACCEPT},
                "gzip": {"Accept-Encoding": "gzip, deflate"},
            }
            out = {k: await asyncio.to_thread(_get, url, h) for k, h in calls.items()}
            out["missing"] = await asyncio.to_thread(_get, url.replace("/metrics", "/nope"))
            return out
        finally:
            await exporter.shutdown()

    res = asyncio.run(scenario())
    status, headers, body = res["plain"]
    assert status == 200 and headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples, _ = samples_of(body.decode())
    labels = {"gen_ai_request_model": "gpt-4o", "gen_ai_operation_name": "chat"}
    labels |= {"service_name": "chat-api", "gen_ai_provider_name": "openai"}
    assert value(samples, "gen_ai_client_cost_usd_total", **labels) == 0.25
    status, headers, body = res["openmetrics"]
    assert status == 200 and headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    samples_of(body.decode(), openmetrics=True)
    status, headers, body = res["gzip"]
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert b"gen_ai_client_cost_usd_total" in gzip.decompress(body)
    assert res["missing"][0] == 404


def test_start_fails_clearly_when_the_port_is_taken() -> None:
    first, _ = make_exporter()
    second, _ = make_exporter()

    async def scenario() -> None:
        await first.start()
        try:
            second_cfg_port = first.server.port
            second.server._port = second_cfg_port  # the same explicit port as the first
            with pytest.raises(OSError, match="cannot listen"):
                await second.start()
        finally:
            await first.shutdown()

    asyncio.run(scenario())


# --- a real Prometheus ------------------------------------------------------------------


class Prometheus:
    def __init__(self, tmp: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp / "prometheus.yml"
        config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
                    "scrape_configs": [
                        {
                            "job_name": "otel-receiver",
                            "honor_labels": True,
                            "static_configs": [{"targets": [target]}],
                        }
                    ],
                }
            )
        )
        self.log = tmp / "prometheus.log"
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--enable-feature=exemplar-storage",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log.read_text()}")
            try:
                if _get(self.url + "/-/ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("prometheus did not become ready")

    def api(self, path: str, **params: str) -> Any:
        status, _, body = _get(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        assert status == 200, body
        return json.loads(body)["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("query", query=promql)["result"]
        return result

    def wait_for(self, promql: str, expected: float, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result and abs(float(result[0]["value"][1]) - expected) <= 1e-9 * max(1.0, abs(expected)):
                return result
            time.sleep(0.25)
        raise AssertionError(
            f"{promql} never became {expected}; last {result}; log {self.log.read_text()[-2000:]}"
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Any]:
    started: list[Prometheus] = []

    def start(target: str) -> Prometheus:
        p = Prometheus(tmp_path, target)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def _post(base_url: str, path: str, body: bytes) -> int:
    req = urllib.request.Request(
        base_url + path, data=body, headers={"Content-Type": "application/x-protobuf"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(resp.status)


@pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="Debian package prometheus not installed")
def test_real_prometheus_scrapes_receiver_metrics(receiver_factory: Any, prometheus_for: Any) -> None:
    receiver = receiver_factory(
        """
receivers: {otlp: {protocols: {http: {endpoint: "127.0.0.1:0"}}}}
exporters:
  prometheus: {endpoint: "127.0.0.1:0"}
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [prometheus]}
    metrics: {receivers: [otlp], exporters: [prometheus]}
"""
    )
    exporter = receiver.service.exporters["prometheus"]
    costs = [0.0031, 0.25, 1.5, 0.000125, 0.042]
    specs = [
        SpanSpec(cost=costs[0], duration_s=0.3),
        SpanSpec(cost=costs[1], model="claude-sonnet-4", provider="anthropic", duration_s=2.0),
        SpanSpec(cost=costs[2], anomaly_kinds=["cost"], duration_s=0.5, tenant="acme"),
        SpanSpec(cost=costs[3], error_type="rate_limited", duration_s=0.05),
        SpanSpec(cost=costs[4], pii_types=["EMAIL"], pii_count=2, duration_s=0.7),
    ]
    start_ns = time.time_ns() - 5_000_000_000
    for part in (specs[:2], specs[2:]):
        assert (
            _post(receiver.http_url, "/v1/traces", trace_request(part, start_ns).SerializeToString()) == 200
        )
    resource = {semconv.SERVICE_NAME: "billing", semconv.SERVICE_INSTANCE_ID: "i-7", "host.name": "h1"}
    for i, v in enumerate((4, 6)):
        m = number_metric(
            "jobs.processed",
            "sum",
            [({"queue": "emails"}, v, 1_700_000_000_000_000_000 + i)],
            unit="{job}",
            temporality=metrics_pb2.AGGREGATION_TEMPORALITY_DELTA,
        )
        assert (
            _post(receiver.http_url, "/v1/metrics", metrics_request([m], resource).SerializeToString()) == 200
        )

    prom = prometheus_for(f"127.0.0.1:{exporter.server.port}")
    # total cost in Prometheus equals the sum of gen_ai.usage.cost sent
    prom.wait_for("sum(gen_ai_client_cost_usd_total)", sum(costs))
    by_model = {
        r["metric"]["gen_ai_request_model"]: float(r["value"][1])
        for r in prom.query("sum by (gen_ai_request_model) (gen_ai_client_cost_usd_total)")
    }
    assert by_model == pytest.approx({"gpt-4o": sum(costs) - costs[1], "claude-sonnet-4": costs[1]})
    tenant = prom.query('gen_ai_client_cost_usd_total{tenant_id="acme"}')
    assert [float(r["value"][1]) for r in tenant] == [costs[2]]
    prom.wait_for('sum(gen_ai_client_token_usage_count{gen_ai_token_type="input"})', 5)
    prom.wait_for('sum(gen_ai_client_operation_duration_seconds_count{error_type="rate_limited"})', 1)
    prom.wait_for('sum(gen_ai_client_operation_duration_seconds_bucket{le="0.64"})', 3)
    prom.wait_for('sum(gen_ai_anomalies_total{kind="cost"})', 1)
    prom.wait_for('sum(pii_redactions_total{type="EMAIL"})', 2)
    # translated OTLP metric: delta accumulated, job/instance from the resource
    prom.wait_for('jobs_processed_total{job="billing",instance="i-7",queue="emails"}', 10)
    prom.wait_for('target_info{job="billing",instance="i-7",host_name="h1"}', 1)
    # self-metrics on the same endpoint
    prom.wait_for('sum(otel_receiver_received_items_total{signal="traces"})', 5)
    assert prom.query("process_resident_memory_bytes")
    # Prometheus negotiated OpenMetrics and stored the trace-id exemplars
    now = time.time()
    exemplars = prom.api(
        "query_exemplars",
        query="gen_ai_client_operation_duration_seconds_bucket",
        start=str(now - 600),
        end=str(now + 60),
    )
    trace_ids = {e["labels"]["trace_id"] for series in exemplars for e in series["exemplars"]}
    assert trace_ids and trace_ids <= {s.trace_id.hex() for s in specs}
    # the scrape target is healthy
    targets = prom.api("targets")["activeTargets"]
    assert [t["health"] for t in targets] == ["up"], targets


@pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="Debian package prometheus not installed")
def test_promtool_lints_the_exposition_clean() -> None:
    exporter, telemetry = make_exporter()
    telemetry.received_items.labels("grpc", "traces").inc()
    specs = [
        SpanSpec(cost=0.5, tenant="acme", anomaly_kinds=["cost"], pii_types=["EMAIL"]),
        SpanSpec(error_type="x"),
    ]
    asyncio.run(exporter.export(trace_request(specs), RequestContext()))
    metrics = [
        number_metric("http.server.requests", "sum", [({"code": 200}, 5, 1)], unit="{request}"),
        number_metric("process.memory.usage", "gauge", [({}, 5, 1)], unit="By"),
        number_metric("cpu.utilization", "gauge", [({}, 0.5, 1)], unit="1"),
    ]
    asyncio.run(
        exporter.export(
            metrics_request(metrics, {semconv.SERVICE_NAME: "a", "host.name": "h"}), RequestContext()
        )
    )
    text = exporter.render("", False)[0]
    promtool = str(Path(PROMETHEUS).with_name("promtool"))
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
