# ruff: noqa: F811  (pytest fixtures imported from test_clickhouse_support)
"""The GenAI incident suite through a real receiver on loopback (OTLP/HTTP): the right
series are flagged within 60 s of event time, the clean parts stay below one false
flag per series-hour, each incident becomes an episode record in the logs pipeline
(and a row of ``otel_logs`` in embedded ClickHouse), and the baselines are on disk
after shutdown."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from test_clickhouse_e2e import StoreReader
from test_clickhouse_support import clickhouse_dir  # noqa: F401

from bench import incidents
from exporters.file.exporter import read_records
from otel_receiver.attributes import get, get_str
from processors.anomaly.processor import ANOMALY_KIND, EPISODE_EVENT_NAME
from semconv import attributes as a

TARGET_DELAY_S = 60.0


def _post(url: str, body: bytes) -> int:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(req, timeout=30) as response:
        status: int = response.status
        return status


def test_incident_suite_through_the_receiver(
    receiver_factory: Callable[..., Any], tmp_path: Path, clickhouse_dir: Path
) -> None:
    database = "anomaly_" + uuid.uuid4().hex[:10]
    traces_out, logs_out, state = tmp_path / "traces.pb", tmp_path / "logs.pb", tmp_path / "baselines.json"
    receiver = receiver_factory(f"""
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
processors:
  anomaly:
    state_path: {state}
    episodes:
      cooldown: 300
exporters:
  file:
    path: {traces_out}
    format: proto
  file/logs:
    path: {logs_out}
    format: proto
  clickhouse:
    endpoint: embedded:{clickhouse_dir}
    database: {database}
    query_endpoint: null
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [anomaly]
      exporters: [file]
    logs:
      receivers: [otlp]
      exporters: [file/logs, clickhouse]
""")
    day = incidents.generate(seed=7, hours=3.0)
    for request in day.requests:
        assert _post(receiver.http_url + "/v1/traces", request.SerializeToString()) == 200
    telemetry = receiver.service.telemetry
    receiver.stop()

    processed = [ExportTraceServiceRequest.FromString(b) for b in read_records(traces_out, "proto")]
    report = incidents.evaluate(day, processed)
    assert report.spans == sum(len(ss.spans) for r in day.requests for rs in r.resource_spans
                               for ss in rs.scope_spans)
    for result in report.incidents:
        assert result.delay_s is not None, f"{result.incident.name} was not flagged"
        assert 0.0 <= result.delay_s <= TARGET_DELAY_S, (result.incident.name, result.delay_s)
    assert report.false_flags_per_series_hour < 1.0, report.false_flags_by_series

    flagged_total = telemetry.total("otel_receiver_anomaly_flagged_spans_total")
    assert flagged_total >= sum(r.flagged_spans for r in report.incidents)

    logs = [ExportLogsServiceRequest.FromString(b) for b in read_records(logs_out, "proto")]
    episodes = [
        (get_str(rl.resource.attributes, a.SERVICE_NAME), record)
        for request in logs
        for rl in request.resource_logs
        for sl in rl.scope_logs
        for record in sl.log_records
        if record.event_name == EPISODE_EVENT_NAME
    ]

    def text(record: Any, key: str) -> str:
        value = get(record.attributes, key)
        return "" if value is None else value.string_value

    for result in report.incidents:
        spec = day.series[result.incident.series]
        matching = [
            e for service, e in episodes
            if service == spec.service.name
            and text(e, ANOMALY_KIND) == result.incident.kind
            and text(e, a.GEN_AI_REQUEST_MODEL) == spec.model.request_model
        ]
        assert matching, f"no episode record for {result.incident.name}"
    # One record per incident, not one per flagged span.
    assert len(episodes) < flagged_total

    # The same records are rows of otel_logs, queryable next to the spans they summarise.
    reader = StoreReader(clickhouse_dir, database)
    try:
        rows = reader.rows(
            "SELECT ServiceName, LogAttributes AS attrs, SeverityText FROM `{db}`.otel_logs "
            f"WHERE EventName = '{EPISODE_EVENT_NAME}'"
        )
    finally:
        reader.store.close()
    assert len(rows) == len(episodes)
    assert {row["SeverityText"] for row in rows} == {"WARN"}
    stored = {(row["ServiceName"], row["attrs"][ANOMALY_KIND]) for row in rows}
    assert stored == {(service, text(e, ANOMALY_KIND)) for service, e in episodes}

    snapshot = json.loads(state.read_text())
    assert len(snapshot["series"]) == len(day.series)
