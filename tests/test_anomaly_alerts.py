"""The shipped Prometheus alerting rules: valid for promtool, and firing (or not) on
synthetic series with ``promtool test rules`` (Prometheus' own rule unit tests)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

RULES = Path(__file__).resolve().parent.parent / "collector-config" / "prometheus" / "alerts.yaml"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool (Debian package prometheus) not installed")

SERIES = 'service_name="support-agent",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o"'
LABELS = {
    "service_name": "support-agent",
    "gen_ai_provider_name": "openai",
    "gen_ai_request_model": "gpt-4o",
}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60)


def _alert(name: str, severity: str, **extra: str) -> dict[str, object]:
    return {"exp_labels": {**LABELS, **extra, "severity": severity}}


def test_rules_pass_promtool_check() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _rules_without_annotations(tmp_path: Path) -> Path:
    """promtool compares annotations verbatim; their templates are already validated by
    ``check rules``, so the behaviour tests run on a copy without them."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    copy = tmp_path / "alerts.yaml"
    copy.write_text(yaml.safe_dump(rules, sort_keys=False))
    return copy


def test_rules_fire_on_synthetic_series(tmp_path: Path) -> None:
    calls = f"gen_ai_client_operation_duration_seconds_count{{{SERIES},gen_ai_operation_name=\"chat\""
    tests = {
        "rule_files": [str(_rules_without_annotations(tmp_path))],
        "evaluation_interval": "1m",
        "tests": [
            {   # 1 call/s; from minute 10 another 0.5 failed calls/s (33 % errors)
                "interval": "1m",
                "input_series": [
                    {"series": calls + ',error_type=""}', "values": "0+60x40"},
                    {"series": calls + ',error_type="openai.APITimeoutError"}', "values": "0x10 30+30x30"},
                ],
                "alert_rule_test": [
                    {"eval_time": "9m", "alertname": "GenAIErrorRateCritical", "exp_alerts": []},
                    {"eval_time": "9m", "alertname": "GenAIErrorRateHigh", "exp_alerts": []},
                    {"eval_time": "25m", "alertname": "GenAIErrorRateCritical",
                     "exp_alerts": [_alert("GenAIErrorRateCritical", "critical")]},
                    {"eval_time": "25m", "alertname": "GenAIErrorRateHigh",
                     "exp_alerts": [_alert("GenAIErrorRateHigh", "warning")]},
                ],
            },
            {   # 0.01 USD/min for a day, then 0.1 USD/min (6 USD/h, 10x)
                "interval": "1m",
                "input_series": [
                    {"series": f"gen_ai_client_cost_usd_total{{{SERIES},gen_ai_operation_name=\"chat\"}}",
                     "values": "0+0.01x1500 15.1+0.1x60"},
                ],
                "alert_rule_test": [
                    {"eval_time": "1490m", "alertname": "GenAICostSpike", "exp_alerts": []},
                    {"eval_time": "1545m", "alertname": "GenAICostSpike",
                     "exp_alerts": [_alert("GenAICostSpike", "warning")]},
                    {"eval_time": "1545m", "alertname": "GenAICostBurnHigh", "exp_alerts": []},
                ],
            },
            {   # 2 calls/s; latency flags on 20 % of them from minute 5
                "interval": "1m",
                "input_series": [
                    {"series": calls + ',error_type=""}', "values": "0+120x40"},
                    {"series": f"gen_ai_anomalies_total{{{SERIES},gen_ai_operation_name=\"chat\","
                               "tenant_id=\"unknown\",kind=\"latency\"}",
                     "values": "0x5 24+24x35"},
                ],
                "alert_rule_test": [
                    {"eval_time": "4m", "alertname": "GenAIAnomalyDetected", "exp_alerts": []},
                    {"eval_time": "8m", "alertname": "GenAIAnomalyDetected",
                     "exp_alerts": [_alert("GenAIAnomalyDetected", "info", kind="latency")]},
                    {"eval_time": "10m", "alertname": "GenAIAnomalyRateHigh", "exp_alerts": []},
                    {"eval_time": "30m", "alertname": "GenAIAnomalyRateHigh",
                     "exp_alerts": [_alert("GenAIAnomalyRateHigh", "warning")]},
                ],
            },
        ],
    }
    test_file = tmp_path / "alerts_test.yaml"
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = _promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr
