"""Pacing protobuf's malloc_trim (otel_receiver/_upbtrim.c, otel_receiver/memory.py).

Each case runs in a fresh interpreter: the redirection is process-wide and the counters
start at zero there. The speed effect is measured in bench/, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from otel_receiver.memory import TRIM_INTERVAL_ENV, pace_protobuf_malloc_trim, trim_interval

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc_trim and ELF relocations")

# 30,000 message arenas freed: upb calls malloc_trim every 10,000 frees.
_CHURN = textwrap.dedent(
    """
    import json, sys
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from otel_receiver import _upbtrim
    from otel_receiver.memory import pace_protobuf_malloc_trim
    sites = pace_protobuf_malloc_trim()
    for _ in range(30_000):
        m = ExportTraceServiceRequest()
        m.resource_spans.add().scope_spans.add().spans.add().name = "x"
        del m
    print(json.dumps({"sites": sites, "counts": _upbtrim.counts()}))
    """
)


def _churn(interval: str) -> dict[str, object]:
    env = {**os.environ, TRIM_INTERVAL_ENV: interval}
    out = subprocess.run(
        [sys.executable, "-c", _CHURN], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_upb_trim_calls_reach_the_pacer_and_one_per_interval_passes() -> None:
    result = _churn("3600")
    assert result["sites"] == 1  # upb's one PLT slot for malloc_trim
    calls, passed = result["counts"]  # type: ignore[misc]
    assert calls >= 2, "upb's malloc_trim calls did not reach the pacer"
    assert passed == 1  # the first call passes, the rest fall within the hour


def test_a_short_interval_lets_calls_through() -> None:
    calls, passed = _churn("0.000000001")["counts"]  # type: ignore[misc]
    assert calls >= 2 and passed == calls


def test_interval_zero_leaves_protobuf_as_it_is() -> None:
    result = _churn("0")
    assert result["sites"] == 0
    assert result["counts"] == [0, 0]  # nothing redirected: upb calls glibc directly


def test_pacing_twice_is_harmless() -> None:
    assert pace_protobuf_malloc_trim({TRIM_INTERVAL_ENV: "60"}) == 1
    assert pace_protobuf_malloc_trim({TRIM_INTERVAL_ENV: "60"}) == 1


@pytest.mark.parametrize("text", ["soon", "-1", "nan", "1e12"])
def test_an_invalid_interval_is_refused_with_the_variable_named(text: str) -> None:
    with pytest.raises(ValueError, match=TRIM_INTERVAL_ENV):
        trim_interval({TRIM_INTERVAL_ENV: text})


def test_run_refuses_an_invalid_interval_before_starting(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "receivers: {otlp: {protocols: {http: {endpoint: 127.0.0.1:0}}}}\n"
        "exporters: {debug: {}}\n"
        "service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}\n"
    )
    env = {**os.environ, TRIM_INTERVAL_ENV: "soon"}
    out = subprocess.run(
        [sys.executable, "-m", "otel_receiver.cli", "run", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert f"cannot start: {TRIM_INTERVAL_ENV} must be a number of seconds" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_default_interval_is_a_minute() -> None:
    assert trim_interval({}) == 60.0
    assert trim_interval({TRIM_INTERVAL_ENV: " 5 "}) == 5.0
