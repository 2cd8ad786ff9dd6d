"""The Grafana dashboard: every PromQL expression parses (promtool) and names only
metrics the receiver exposes on its Prometheus endpoint."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_prometheus_helpers import SpanSpec, export, make_exporter, scrape, trace_request

from otel_receiver.component import RequestContext

DASHBOARD = (
    Path(__file__).resolve().parent.parent / "collector-config" / "grafana" / "otel-genai-receiver.json"
)
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
# Grafana's variables, replaced by values of the right PromQL type before parsing.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$service": ".*",
    "$model": ".*",
}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}
_TYPE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}


def _expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((.*),\s*\w+\)", var["definition"])
            assert m, var["definition"]
            exprs.append(m.group(1))
    return exprs


def _substitute(expr: str) -> str:
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    assert "$" not in expr, expr
    return expr


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (identifiers that are not functions, keywords,
    label names or strings)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = re.findall(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", s)
    return {n for n in names if n.lower() not in _KEYWORDS}


def _promtool_check(exprs: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:expr_{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    return subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


def _exposed_sample_names() -> set[str]:
    """Every sample name the endpoint can expose: a scrape after spans using every feature,
    with the families that have no samples yet named from their type."""
    exporter, telemetry = make_exporter(max_series_per_metric=1)
    specs = [
        SpanSpec(cost=0.5, tenant="acme", anomaly_kinds=["cost"], pii_types=["EMAIL"]),
        SpanSpec(cost=0.1, model="other-model", error_type="timeout"),
    ]
    export(exporter, trace_request(specs), RequestContext(tenant="acme"))
    telemetry.queue_size.labels("prometheus").set(1)
    names: set[str] = set()
    for family in text_string_to_metric_families(scrape(exporter)[0]):
        names.update(s.name for s in family.samples)
        names.update(family.name + suffix for suffix in _TYPE_SUFFIXES.get(family.type, ("",)))
    return names


@pytest.mark.skipif(not Path(PROMTOOL).exists(), reason="Debian package prometheus (promtool) not installed")
def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [_substitute(e) for e in _expressions(dashboard)]
    assert len(exprs) >= 20
    result = _promtool_check(exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(exprs)} rules found" in result.stdout
    # and promtool does reject a broken expression, so the check above can fail
    assert _promtool_check(["sum(rate(x[5m])"], tmp_path).returncode != 0


def test_dashboard_names_only_metrics_we_export() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = set().union(*(metric_names(_substitute(e)) for e in _expressions(dashboard)))
    exposed = _exposed_sample_names()
    assert not used - exposed, f"dashboard uses metrics nobody exports: {sorted(used - exposed)}"
    # the dashboard covers cost, tokens, latency, errors, anomalies, PII and pipeline health
    for needed in (
        "gen_ai_client_cost_usd_total",
        "gen_ai_client_token_usage_sum",
        "gen_ai_client_operation_duration_seconds_bucket",
        "gen_ai_anomalies_total",
        "pii_redactions_total",
        "otel_receiver_received_items_total",
        "otel_receiver_dropped_items_total",
        "otel_receiver_queue_size",
    ):
        assert needed in used


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, model) (rate(a_bucket{x="y{z}", le!="1"}[5m]))) '
        "/ on (job) group_left (instance) b_total + c offset 5m > bool 1e3"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c"}


def test_panels_have_unique_ids_and_a_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for p in dashboard["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}"
            assert p["targets"]
