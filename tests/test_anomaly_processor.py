"""The anomaly processor in-process: flags, counters, series keys, LRU eviction,
snapshot/restore, episode records, and the GenAI incident suite."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from pydantic import ValidationError

from bench import incidents
from otel_receiver.attributes import any_value_to_python, get
from otel_receiver.component import Batch, ComponentSettings, RequestContext, Signal
from otel_receiver.registry import REGISTRY
from otel_receiver.telemetry import SelfTelemetry
from processors.anomaly import AnomalyConfig, AnomalyProcessor, factory
from processors.anomaly.processor import (
    ANOMALY_EPISODE_END,
    ANOMALY_EPISODE_START,
    ANOMALY_KIND,
    EPISODE_EVENT_NAME,
)
from semconv import attributes as a

S = 10**9
T0 = incidents.DAY_START_NS


class RecordingHost:
    """Stands in for the runtime's Host in unit tests (the end-to-end test uses the real
    one): keeps what the processor submits."""

    def __init__(self) -> None:
        self.submitted: list[tuple[Signal, Batch]] = []

    def submit(self, signal: Signal, batch: Batch, context: RequestContext) -> bool:
        self.submitted.append((signal, batch))
        return True


def make(config: dict[str, Any] | None = None, telemetry: SelfTelemetry | None = None,
         host: RecordingHost | None = None, config_dir: str = ".", name: str = "anomaly") -> AnomalyProcessor:
    settings = ComponentSettings(name, telemetry or SelfTelemetry(), logging.getLogger("test.anomaly"),
                                 host=host, config_dir=config_dir)
    return AnomalyProcessor(AnomalyConfig(**(config or {})), settings)


def request(spans: list[dict[str, Any]], service: str = "svc") -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = a.SERVICE_NAME, service
    ss = rs.scope_spans.add()
    for spec in spans:
        span = ss.spans.add()
        span.name = spec.get("name", "chat gpt-4o")
        span.start_time_unix_nano = spec["start"]
        span.end_time_unix_nano = spec["start"] + int(spec.get("latency", 1.0) * S)
        if spec.get("error"):
            span.status.code = Status.STATUS_CODE_ERROR
        attrs = dict(spec.get("attrs", {}))
        if spec.get("genai", True):
            attrs.setdefault(a.GEN_AI_OPERATION_NAME, "chat")
            attrs.setdefault(a.GEN_AI_PROVIDER_NAME, "openai")
            attrs.setdefault(a.GEN_AI_REQUEST_MODEL, spec.get("model", "gpt-4o"))
        for key, value in attrs.items():
            kv = span.attributes.add()
            kv.key = key
            if isinstance(value, bool):
                kv.value.bool_value = value
            elif isinstance(value, int):
                kv.value.int_value = value
            elif isinstance(value, float):
                kv.value.double_value = value
            else:
                kv.value.string_value = value
    return req


def steady(n: int, start_s: float = 0.0, every_s: float = 2.0, **extra: Any) -> list[dict[str, Any]]:
    """Calls with a latency that cycles over 0.9..1.3 s (no randomness, no surprises)."""
    return [
        {"start": T0 + int((start_s + i * every_s) * S), "latency": 0.9 + 0.1 * (i % 5), **extra}
        for i in range(n)
    ]


def attrs_of(req: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    return [
        {kv.key: any_value_to_python(kv.value) for kv in span.attributes}
        for rs in req.resource_spans for ss in rs.scope_spans for span in ss.spans
    ]


def test_factory_is_registered_and_config_validates() -> None:
    assert REGISTRY.factory("processors", "anomaly") is factory
    cfg = AnomalyConfig()
    assert cfg.dimensions == (a.SERVICE_NAME, a.GEN_AI_PROVIDER_NAME, a.GEN_AI_REQUEST_MODEL,
                              a.GEN_AI_OPERATION_NAME)
    assert cfg.signals.latency and cfg.signals.tokens and cfg.signals.cost and cfg.signals.error_rate
    with pytest.raises(ValidationError, match="unknown_key"):
        AnomalyConfig(unknown_key=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        AnomalyConfig(threshold=1.5)
    with pytest.raises(ValidationError):
        AnomalyConfig(dimensions=("service.name", "service.name"))
    with pytest.raises(ValidationError, match="error_rate_baseline"):
        AnomalyConfig(error_rate_window=600, error_rate_baseline=300)


def test_latency_spike_flags_only_that_span_and_counts_it() -> None:
    telemetry = SelfTelemetry()
    proc = make(telemetry=telemetry)
    proc.process_traces(request(steady(600)), RequestContext())
    slow = request([{"start": T0 + 1300 * S, "latency": 30.0}, *steady(5, start_s=1302)])
    proc.process_traces(slow, RequestContext())
    flagged = attrs_of(slow)
    assert flagged[0][a.ANOMALY_FLAGGED] is True
    assert flagged[0][a.ANOMALY_KINDS] == [a.ANOMALY_KIND_LATENCY]
    assert 0.6 <= flagged[0][a.ANOMALY_SCORE] < 1.0
    for other in flagged[1:]:
        assert not {a.ANOMALY_FLAGGED, a.ANOMALY_KINDS, a.ANOMALY_SCORE} & other.keys()
    labels = {"kind": "latency", "service_name": "svc", "gen_ai_provider_name": "openai",
              "gen_ai_request_model": "gpt-4o", "gen_ai_operation_name": "chat", "span_name": ""}
    assert telemetry.value("otel_receiver_anomaly_flagged_spans_total", labels) == 1.0


def test_client_sent_anomaly_attributes_are_removed_from_unflagged_spans() -> None:
    proc = make()
    req = request(steady(3, attrs={a.ANOMALY_FLAGGED: True, a.ANOMALY_SCORE: 0.99}))
    proc.process_traces(req, RequestContext())
    for attrs in attrs_of(req):
        assert a.ANOMALY_FLAGGED not in attrs and a.ANOMALY_SCORE not in attrs


def test_tokens_and_cost_detectors_and_switches() -> None:
    usage = {a.GEN_AI_USAGE_INPUT_TOKENS: 1000, a.GEN_AI_USAGE_OUTPUT_TOKENS: 200, a.GEN_AI_USAGE_COST: 0.004}
    normal = [{**s, "attrs": dict(usage)} for s in steady(600)]
    burst = {a.GEN_AI_USAGE_INPUT_TOKENS: 40_000, a.GEN_AI_USAGE_OUTPUT_TOKENS: 200, a.GEN_AI_USAGE_COST: 0.1}
    spike = [{"start": T0 + 1300 * S, "latency": 1.0, "attrs": burst}]

    proc = make()
    proc.process_traces(request(normal), RequestContext())
    req = request(spike)
    proc.process_traces(req, RequestContext())
    assert sorted(attrs_of(req)[0][a.ANOMALY_KINDS]) == ["cost", "tokens"]

    only_latency = make({"signals": {"tokens": False, "cost": False, "error_rate": False}})
    only_latency.process_traces(request(normal), RequestContext())
    req = request(spike)
    only_latency.process_traces(req, RequestContext())
    assert a.ANOMALY_FLAGGED not in attrs_of(req)[0]
    series = next(iter(only_latency._series.values()))
    assert series.tokens is None and series.cost is None and series.error_rate is None


def test_error_burst_is_flagged_as_error_rate() -> None:
    proc = make()
    proc.process_traces(request(steady(600)), RequestContext())
    burst = [{**s, "error": i % 2 == 0} for i, s in enumerate(steady(20, start_s=1200))]
    req = request(burst)
    proc.process_traces(req, RequestContext())
    kinds = [k for attrs in attrs_of(req) for k in attrs.get(a.ANOMALY_KINDS, [])]
    assert a.ANOMALY_KIND_ERROR_RATE in kinds


def test_series_keys_genai_and_other_spans() -> None:
    proc = make()
    proc.process_traces(request(steady(3, model="gpt-4o") + steady(3, model="o3-mini")), RequestContext())
    proc.process_traces(request(steady(3, genai=False, name="GET /api"), service="web"), RequestContext())
    keys = set(proc._series.keys())
    assert (True, "svc", "openai", "gpt-4o", "chat") in keys
    assert (True, "svc", "openai", "o3-mini", "chat") in keys
    assert (False, "web", "GET /api") in keys

    genai_only = make({"non_genai_dimensions": []})
    genai_only.process_traces(request(steady(3, genai=False), service="web"), RequestContext())
    assert genai_only.series_count == 0


def test_least_recently_used_series_is_evicted_at_the_limit() -> None:
    telemetry = SelfTelemetry()
    proc = make({"max_series": 2}, telemetry=telemetry, name="anomaly/lru")
    ctx = RequestContext()
    proc.process_traces(request(steady(1, model="a")), ctx)
    proc.process_traces(request(steady(1, model="b")), ctx)
    proc.process_traces(request(steady(1, model="a")), ctx)  # a is now the most recent
    proc.process_traces(request(steady(1, model="c")), ctx)
    series_keys = proc._series.keys()  # a list, oldest first
    models = {key[3] for key in series_keys}
    assert models == {"a", "c"}
    assert telemetry.value("otel_receiver_anomaly_series_evicted_total", {"component": "anomaly/lru"}) == 1
    assert telemetry.value("otel_receiver_anomaly_series", {"component": "anomaly/lru"}) == 2


def test_two_instances_share_one_registry() -> None:
    telemetry = SelfTelemetry()
    make(telemetry=telemetry, name="anomaly/a")
    make(telemetry=telemetry, name="anomaly/b")
    with pytest.raises(ValueError, match="dimensions"):
        make({"dimensions": ["service.name"]}, telemetry=telemetry, name="anomaly/c")


def test_snapshot_restore_continues_as_if_never_restarted(tmp_path: Path) -> None:
    day = incidents.generate(seed=3, hours=1.0, with_incidents=False)
    bodies = [r.SerializeToString() for r in day.requests]
    half = len(bodies) // 2
    config = {"state_path": "state/anomaly.json"}

    uninterrupted = make(config, config_dir=str(tmp_path / "a"))
    for body in bodies[:half]:
        uninterrupted.process_traces(ExportTraceServiceRequest.FromString(body), RequestContext())

    first = make(config, config_dir=str(tmp_path))
    for body in bodies[:half]:
        first.process_traces(ExportTraceServiceRequest.FromString(body), RequestContext())
    asyncio.run(first.shutdown())  # writes the snapshot
    path = tmp_path / "state" / "anomaly.json"
    assert json.loads(path.read_text())["series"]

    telemetry = SelfTelemetry()
    second = make(config, telemetry=telemetry, config_dir=str(tmp_path))

    async def restart() -> None:
        await second.start()
        await second.shutdown()

    asyncio.run(restart())
    assert second.series_count == first.series_count == len(day.series)
    assert telemetry.value("otel_receiver_anomaly_snapshots_total",
                           {"component": "anomaly", "outcome": "restored"}) == 1
    for body in bodies[half:]:
        a_req = ExportTraceServiceRequest.FromString(body)
        b_req = ExportTraceServiceRequest.FromString(body)
        uninterrupted.process_traces(a_req, RequestContext())
        second.process_traces(b_req, RequestContext())
        assert a_req == b_req
    assert uninterrupted.snapshot()["series"] == second.snapshot()["series"]


def test_snapshot_of_other_parameters_is_not_restored(tmp_path: Path) -> None:
    first = make({"state_path": str(tmp_path / "s.json")})
    first.process_traces(request(steady(10)), RequestContext())
    first.save_snapshot()
    telemetry = SelfTelemetry()
    other = make({"state_path": str(tmp_path / "s.json"), "detector": {"warmup": 50}}, telemetry=telemetry)
    assert other.restore_snapshot() is False
    assert other.series_count == 0
    assert telemetry.value("otel_receiver_anomaly_snapshots_total",
                           {"component": "anomaly", "outcome": "restore_failed"}) == 1


def test_snapshots_are_written_periodically(tmp_path: Path) -> None:
    proc = make({"state_path": str(tmp_path / "s.json"), "snapshot_interval": 0.05})

    async def run() -> None:
        await proc.start()
        proc.process_traces(request(steady(5)), RequestContext())
        for _ in range(100):
            if (tmp_path / "s.json").exists():
                break
            await asyncio.sleep(0.02)
        assert (tmp_path / "s.json").exists()
        await proc.shutdown()

    asyncio.run(run())
    assert json.loads((tmp_path / "s.json").read_text())["series"][0]["key"][3] == "gpt-4o"


def test_one_episode_record_per_incident_after_the_cooldown() -> None:
    host = RecordingHost()
    proc = make({"episodes": {"cooldown": 60}}, host=host)
    ctx = RequestContext()
    proc.process_traces(request(steady(600)), ctx)
    slow = [{"start": T0 + int((1300 + 2 * i) * S), "latency": 20.0 + i} for i in range(6)]
    req = request(slow)
    proc.process_traces(req, ctx)
    assert sum(1 for attrs in attrs_of(req) if attrs.get(a.ANOMALY_FLAGGED)) >= 2
    assert host.submitted == []  # still open
    proc.process_traces(request(steady(60, start_s=1400)), ctx)  # 2 minutes of quiet calls
    assert len(host.submitted) == 1
    signal, logs = host.submitted[0]
    assert signal is Signal.LOGS and isinstance(logs, ExportLogsServiceRequest)
    records = [r for rl in logs.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    assert len(records) == 1
    record = records[0]
    assert record.event_name == EPISODE_EVENT_NAME
    start = get(record.attributes, ANOMALY_EPISODE_START)
    end = get(record.attributes, ANOMALY_EPISODE_END)
    assert start is not None and end is not None and start.int_value <= end.int_value
    kind = get(record.attributes, ANOMALY_KIND)
    assert kind is not None and kind.string_value == a.ANOMALY_KIND_LATENCY
    assert get(record.attributes, a.GEN_AI_REQUEST_MODEL) is not None
    asyncio.run(proc.shutdown())
    assert len(host.submitted) == 1  # nothing else was open


def test_open_episodes_are_emitted_at_shutdown() -> None:
    host = RecordingHost()
    proc = make(host=host)
    proc.process_traces(request(steady(600)), RequestContext())
    proc.process_traces(request([{"start": T0 + 1300 * S, "latency": 40.0}]), RequestContext())
    assert host.submitted == []
    asyncio.run(proc.shutdown())
    assert len(host.submitted) == 1


def test_incident_suite_in_process() -> None:
    day = incidents.generate(seed=7, hours=3.0)
    report, _ = incidents.run_in_process(day)
    for result in report.incidents:
        assert result.delay_s is not None, f"{result.incident.name} not flagged"
        assert result.delay_s <= 60.0, (result.incident.name, result.delay_s)
    assert report.false_flags_per_series_hour < 1.0
