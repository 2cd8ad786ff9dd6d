# ruff: noqa: F811  (pytest fixtures imported from test_clickhouse_support)
"""The hash-chained audit trail, end to end: a real receiver with API-key auth writes
``audit_log`` into embedded ClickHouse, ``otel-receiver audit-verify`` checks the chain
with ClickHouse's own SHA-256 over the stored columns, and tampering is found."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from test_audit import genai_request
from test_clickhouse_e2e import StoreReader
from test_clickhouse_support import clickhouse_dir  # noqa: F401
from test_receiver_protocol import http_post

from otel_receiver.cli import main
from otel_receiver.component import ComponentSettings, RequestContext
from otel_receiver.telemetry import SelfTelemetry
from processors.audit import AuditConfig, AuditProcessor
from processors.audit.trail import (
    ACTION_CHAIN_CLOSE,
    GENESIS,
    VERIFY_SQL,
    Anchor,
    AnchorFile,
    AuditEntry,
    AuditTrail,
    anchor_problems,
    canonical,
    record_id,
)
from semconv import attributes as a

KEY = "trail-test-key-0123456789"
AUTH = {"x-api-key": KEY}


def _config(store: Path, database: str, trail: str = "flush_interval: 0.1") -> str:
    return f"""
receivers:
  otlp:
    protocols: {{http: {{endpoint: "127.0.0.1:0"}}}}
    auth:
      api_keys: [{{key: "{KEY}", tenant: acme, actor: agent-7, roles: [ingest]}}]
processors:
  audit: {{trail: {{exporter: clickhouse, {trail}}}}}
exporters:
  clickhouse:
    endpoint: embedded:{store}
    database: {database}
    query_endpoint: null
    sending_queue: {{batch: {{flush_timeout: 0.2}}}}
service:
  pipelines:
    traces: {{receivers: [otlp], processors: [audit], exporters: [clickhouse]}}
    logs: {{receivers: [otlp], processors: [audit], exporters: [clickhouse]}}
    metrics: {{receivers: [otlp], processors: [audit], exporters: [clickhouse]}}
"""


def _verify(config_file: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["audit-verify", "--config", str(config_file)])
    return rc, capsys.readouterr().out


def _traces_with_a_plain_span(span_id: int) -> bytes:
    req = genai_request(span_id, {})
    plain = req.resource_spans[0].scope_spans[0].spans.add()
    plain.CopyFrom(req.resource_spans[0].scope_spans[0].spans[0])
    del plain.attributes[:]
    plain.name = "GET /health"
    plain.span_id = (span_id + 1000).to_bytes(8, "big")
    return req.SerializeToString()


def _logs() -> bytes:
    logs = ExportLogsServiceRequest()
    logs.resource_logs.add().scope_logs.add().log_records.add().body.string_value = "hello"
    return logs.SerializeToString()


def _metrics() -> bytes:
    metrics = ExportMetricsServiceRequest()
    metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="m").gauge.data_points.add(as_int=1)
    return metrics.SerializeToString()


def test_chain_is_written_verified_and_tampering_is_found(
    receiver_factory: Callable[..., Any],
    clickhouse_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    database = "trail_" + uuid.uuid4().hex[:10]
    yaml_text = _config(clickhouse_dir, database)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml_text)
    r = receiver_factory(yaml_text)
    assert http_post(r.http_url, "/v1/traces", _traces_with_a_plain_span(1), headers=AUTH)[0] == 200
    assert http_post(r.http_url, "/v1/logs", _logs(), headers=AUTH)[0] == 200
    assert http_post(r.http_url, "/v1/metrics", _metrics(), headers=AUTH)[0] == 200
    # without credentials the request is refused and audits nothing
    assert http_post(r.http_url, "/v1/logs", _logs())[0] == 401
    r.stop()  # a clean shutdown writes the closing record

    reader = StoreReader(clickhouse_dir, database)
    rows = reader.rows("SELECT * FROM `{db}`.audit_log ORDER BY Seq")
    assert [(row["Seq"], row["Action"], row["ResourceType"]) for row in rows] == [
        (1, "audit.chain.open", "audit_trail"),
        (2, "ingest", "traces"),
        (3, "chat", "model"),
        (4, "ingest", "logs"),
        (5, "ingest", "metrics"),
        (6, "audit.chain.close", "audit_trail"),
    ]
    assert rows[0]["PrevHash"] == GENESIS
    assert all(rows[i]["PrevHash"] == rows[i - 1]["RecordHash"] for i in range(1, len(rows)))
    assert {(row["TenantId"], row["ActorId"]) for row in rows[1:5]} == {("acme", "agent-7")}
    assert '"items":2' in rows[1]["Details"] and '"roles":["ingest"]' in rows[1]["Details"]
    assert rows[2]["ResourceId"] == "gpt-4o" and rows[2]["Details"] == '{"provider":"openai"}'

    # Every stored item names its record: the chat span its own, the others their request's.
    spans = reader.rows("SELECT SpanName, SpanAttributes AS attrs FROM `{db}`.otel_traces ORDER BY SpanName")
    assert [(s["SpanName"], s["attrs"][a.AUDIT_RECORD_ID]) for s in spans] == [
        ("GET /health", rows[1]["RecordId"]),
        ("chat gpt-4o", rows[2]["RecordId"]),
    ]
    assert a.AUDIT_ACTION not in spans[0]["attrs"]
    (log_row,) = reader.rows("SELECT LogAttributes AS attrs FROM `{db}`.otel_logs")
    assert log_row["attrs"][a.AUDIT_RECORD_ID] == rows[3]["RecordId"]

    rc, out = _verify(config_file, capsys)
    assert rc == 0, out
    assert "every chain verifies" in out

    # Someone with write access to ClickHouse rewrites who did the chat call.
    reader.store.execute(
        f"ALTER TABLE `{database}`.audit_log UPDATE ActorId = 'someone-else' WHERE Seq = 3 "
        "SETTINGS mutations_sync = 1"
    )
    rc, out = _verify(config_file, capsys)
    assert rc == 1
    assert "BROKEN" in out and "altered" in out and f"{rows[2]['RecordId']}" in out

    # ... and removes a record: the next one shows the gap.
    reader.store.execute(f"DELETE FROM `{database}`.audit_log WHERE Seq = 4 SETTINGS mutations_sync = 1")
    rc, out = _verify(config_file, capsys)
    assert rc == 1 and "records missing before Seq 5" in out
    reader.store.close()


def test_store_outage_holds_intake_and_loses_no_record(
    receiver_factory: Callable[..., Any],
    clickhouse_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """While audit_log cannot be written, records wait; at ``max_pending`` the receiver
    answers 503 + Retry-After rather than ingest what it cannot audit."""
    database = "trail_" + uuid.uuid4().hex[:10]
    yaml_text = _config(clickhouse_dir, database, "flush_interval: 0.1, max_pending: 10")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml_text)
    r = receiver_factory(yaml_text)
    reader = StoreReader(clickhouse_dir, database)
    reader.wait_for("audit_log", 1)  # the chain's opening record
    reader.store.execute(f"DETACH TABLE `{database}`.audit_log")
    accepted = 0
    status, headers = 200, {}
    for _ in range(20):
        status, headers, _ = http_post(r.http_url, "/v1/logs", _logs(), headers=AUTH)
        if status != 200:
            break
        accepted += 1
    assert status == 503 and "retry-after" in headers
    assert accepted == 10  # ten ingest records pending: the eleventh request is refused
    deadline = time.monotonic() + 10
    while r.telemetry.total("otel_receiver_audit_write_errors_total") < 1:
        assert time.monotonic() < deadline, "no failed write of the pending records"
        time.sleep(0.05)
    reader.store.execute(f"ATTACH TABLE `{database}`.audit_log")

    deadline = time.monotonic() + 60
    while http_post(r.http_url, "/v1/logs", _logs(), headers=AUTH)[0] != 200:
        assert time.monotonic() < deadline, "intake did not resume after the store came back"
        time.sleep(0.2)
    accepted += 1
    r.stop()
    ingest = reader.rows("SELECT count() AS n FROM `{db}`.audit_log WHERE Action = 'ingest'")[0]["n"]
    assert int(ingest) == accepted
    assert reader.count("otel_logs") == accepted
    rc, out = _verify(config_file, capsys)
    assert rc == 0, out
    reader.store.close()


def test_a_store_made_before_the_trail_gets_its_chain_columns(
    receiver_factory: Callable[..., Any], clickhouse_dir: Path
) -> None:
    database = "trail_" + uuid.uuid4().hex[:10]
    reader = StoreReader(clickhouse_dir, database)
    reader.store.execute(f"CREATE DATABASE `{database}`")
    # audit_log as the previous release created it (nothing wrote it then)
    reader.store.execute(
        f"CREATE TABLE `{database}`.audit_log (Timestamp DateTime64(9), RecordId String, TenantId "
        "LowCardinality(String), ActorId String, Action LowCardinality(String), ResourceType "
        "LowCardinality(String), ResourceId String, TraceId String, SpanId String, Details String, "
        "PrevHash String, RecordHash String) ENGINE = MergeTree ORDER BY (TenantId, Timestamp, RecordId)"
    )
    r = receiver_factory(_config(clickhouse_dir, database))
    assert http_post(r.http_url, "/v1/logs", _logs(), headers=AUTH)[0] == 200
    r.stop()
    rows = reader.rows("SELECT Seq, Action FROM `{db}`.audit_log ORDER BY Seq")
    assert [row["Action"] for row in rows] == ["audit.chain.open", "ingest", "audit.chain.close"]
    reader.store.close()


def test_canonical_encoding_is_unambiguous() -> None:
    """Moving characters from one column to its neighbour changes the hashed bytes."""
    one = AuditEntry(1, "chat", "model", tenant="ab", actor="c")
    two = AuditEntry(1, "chat", "model", tenant="a", actor="bc")
    assert canonical("h", 1, one, GENESIS) != canonical("h", 1, two, GENESIS)
    three = AuditEntry(1, "chat", "model", tenant="a:1", actor="")
    four = AuditEntry(1, "chat", "model", tenant="a", actor="1:")
    assert canonical("h", 1, three, GENESIS) != canonical("h", 1, four, GENESIS)


class _RecordingSink:
    """Keeps what the trail writes (the real store is covered by the tests above; this
    one checks which records and attributes each setting makes)."""

    def __init__(self) -> None:
        self.columns: list[dict[str, Any]] = []

    def write_audit_rows(self, body: bytes, dedup_token: str) -> None:
        self.columns.append(orjson.loads(body))


@pytest.mark.parametrize(
    ("cfg", "actions", "records"),
    [
        ({}, True, ["audit.chain.open", "ingest", "chat"]),
        ({"trail": {"genai_records": False}}, True, ["audit.chain.open", "ingest"]),
        ({"genai_actions": False, "trail": {"genai_records": False}}, False, ["audit.chain.open", "ingest"]),
        ({"genai_actions": False}, False, ["audit.chain.open", "ingest", "chat"]),
    ],
)
def test_settings_choose_records_and_attributes(
    cfg: dict[str, Any], actions: bool, records: list[str]
) -> None:
    telemetry = SelfTelemetry()
    proc = AuditProcessor(
        AuditConfig(**cfg), ComponentSettings("audit", telemetry, logging.getLogger("audit"))
    )
    sink = _RecordingSink()
    proc.trail = AuditTrail(sink, telemetry.registry, flush_interval=60)
    proc.trail.start()
    req = ExportTraceServiceRequest.FromString(_traces_with_a_plain_span(1))
    proc.process(req, RequestContext(tenant="acme", actor="bot", may_hold_audit_attributes=False))
    proc.trail.flush()
    (written,) = sink.columns
    assert written["Action"] == records
    chat, plain = req.resource_spans[0].scope_spans[0].spans
    chat_attrs = {kv.key: kv.value.string_value for kv in chat.attributes if kv.key.startswith("audit.")}
    plain_attrs = {kv.key: kv.value.string_value for kv in plain.attributes}
    assert (a.AUDIT_ACTION in chat_attrs) is actions
    # a GenAI span names its own record when it has one, else its request's
    assert chat_attrs[a.AUDIT_RECORD_ID] == written["RecordId"][len(records) - 1]
    assert plain_attrs[a.AUDIT_RECORD_ID] == written["RecordId"][1]
    assert plain_attrs[a.AUDIT_TENANT_ID] == "acme"


def test_a_trail_on_an_exporter_without_a_store_stops_the_start_with_a_message(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        """
receivers: {otlp: {protocols: {http: {endpoint: "127.0.0.1:0"}}}}
processors: {audit: {trail: {exporter: debug}}}
exporters: {debug: {}}
service: {pipelines: {traces: {receivers: [otlp], processors: [audit], exporters: [debug]}}}
"""
    )
    done = subprocess.run(
        [sys.executable, "-m", "otel_receiver.cli", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "cannot start: audit: trail.exporter 'debug' cannot keep audit records" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_failed_write_is_retried_with_the_same_rows_and_token() -> None:
    """If a write failed after the store kept the rows (a timeout), the retry must carry the
    same deduplication token, so it has to resend exactly those rows, not more."""

    class FlakySink:
        def __init__(self) -> None:
            self.calls: list[tuple[str, list[int]]] = []

        def write_audit_rows(self, body: bytes, dedup_token: str) -> None:
            self.calls.append((dedup_token, orjson.loads(body)["Seq"]))
            if len(self.calls) == 1:
                raise TimeoutError("the store did not answer in time")

    sink = FlakySink()
    trail = AuditTrail(sink, SelfTelemetry().registry, chain_id="c", flush_interval=60)
    trail.append([AuditEntry(1, "ingest", "logs")] * 3)
    with pytest.raises(TimeoutError):
        trail.flush()
    trail.append([AuditEntry(2, "ingest", "logs")] * 2)  # more arrive meanwhile
    trail.flush()
    assert sink.calls == [
        ("audit:c:1-3", [1, 2, 3]),
        ("audit:c:1-3", [1, 2, 3]),
        ("audit:c:4-5", [4, 5]),
    ]
    assert trail.pending == 0


def _forge(reader: StoreReader, database: str, chain_id: str, seq: int, prev_hash: str, action: str) -> str:
    """Insert a record the way an attacker with write access to the store would: with a
    correct hash over its columns and a correct link to the previous record."""
    entry = AuditEntry(time.time_ns(), action, "model", "gpt-4o", tenant="acme", actor="agent-7")
    record_hash = hashlib.sha256(canonical(chain_id, seq, entry, prev_hash)).hexdigest()
    reader.store.execute(
        f"INSERT INTO `{database}`.audit_log (Timestamp, ChainId, Seq, RecordId, TenantId, ActorId, Action, "
        "ResourceType, ResourceId, TraceId, SpanId, Details, PrevHash, RecordHash) VALUES "
        f"(fromUnixTimestamp64Nano(toInt64({entry.timestamp_ns})), '{chain_id}', {seq}, "
        f"'{record_id(chain_id, seq)}', 'acme', 'agent-7', '{action}', 'model', 'gpt-4o', '', '', '', "
        f"'{prev_hash}', '{record_hash}')"
    )
    return record_hash


def test_anchors_find_records_removed_from_the_end_and_a_rewritten_suffix(
    receiver_factory: Callable[..., Any],
    clickhouse_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    database = "anchor_" + uuid.uuid4().hex[:10]
    yaml_text = _config(clickhouse_dir, database, trail="flush_interval: 0.1, anchor_file: anchors.jsonl")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml_text)
    r = receiver_factory(yaml_text, str(tmp_path))  # the anchor file is relative to the config
    deadline = time.monotonic() + 60
    while not (tmp_path / "anchors.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the first write (the opening record) is anchored
    assert http_post(r.http_url, "/v1/traces", _traces_with_a_plain_span(1), headers=AUTH)[0] == 200
    assert http_post(r.http_url, "/v1/logs", _logs(), headers=AUTH)[0] == 200
    r.stop()

    reader = StoreReader(clickhouse_dir, database)
    rows = reader.rows("SELECT ChainId, Seq, RecordHash FROM `{db}`.audit_log ORDER BY Seq")
    assert [row["Seq"] for row in rows] == [1, 2, 3, 4, 5]  # open, ingest, chat, ingest, close
    anchors = [orjson.loads(line) for line in (tmp_path / "anchors.jsonl").read_text().splitlines()]
    # at the first write, and at shutdown with the closing record
    assert anchors[-1]["seq"] == 5 and anchors[-1]["hash"] == rows[-1]["RecordHash"]
    assert len(anchors) >= 2 and anchors[0]["seq"] < 5
    rc, out = _verify(config_file, capsys)
    assert rc == 0, out
    assert "every anchored chain is stored up to its last anchor" in out

    # Anchors of chains the store never got (a store replaced by an empty one), more than
    # one query's worth: each is reported.
    many = tmp_path / "many-anchors.jsonl"
    fake = [{"chain": f"gone:{i}", "seq": 3, "hash": "0" * 64, "time_ns": 1} for i in range(1200)]
    many.write_bytes(
        (tmp_path / "anchors.jsonl").read_bytes() + b"".join(orjson.dumps(f) + b"\n" for f in fake)
    )
    assert main(["audit-verify", "--config", str(config_file), "--anchors", str(many)]) == 1
    out = capsys.readouterr().out
    assert "1201 chains anchored" in out and out.count("no record of the chain is stored") == 1200

    # The last two records are deleted: the chain stays internally consistent (no gap, every
    # hash matches), which the hashes alone cannot tell from a chain that was never closed.
    chain_id = rows[0]["ChainId"]
    reader.store.execute(f"DELETE FROM `{database}`.audit_log WHERE Seq >= 4 SETTINGS mutations_sync = 1")
    assert reader.rows(VERIFY_SQL.replace("FROM audit_log", "FROM `{db}`.audit_log")) == []
    rc, out = _verify(config_file, capsys)
    assert rc == 1
    assert "anchored at Seq 5" in out and "the store ends at Seq 3: records removed from the end" in out

    # The attacker then writes a new tail with valid hashes and links: still found.
    prev = _forge(reader, database, chain_id, 4, rows[2]["RecordHash"], "chat")
    _forge(reader, database, chain_id, 5, prev, ACTION_CHAIN_CLOSE)
    assert reader.rows(VERIFY_SQL.replace("FROM audit_log", "FROM `{db}`.audit_log")) == []
    rc, out = _verify(config_file, capsys)
    assert rc == 1 and "Seq 5 has another RecordHash than its anchor" in out
    reader.store.close()


def test_anchor_file_appends_at_first_write_interval_and_close_and_survives_failures(tmp_path: Path) -> None:
    class Sink:
        def write_audit_rows(self, body: bytes, dedup_token: str) -> None:
            pass

    telemetry = SelfTelemetry()
    path = tmp_path / "anchors" / "trail.jsonl"
    trail = AuditTrail(
        Sink(),
        telemetry.registry,
        chain_id="c",
        flush_interval=60,
        anchor_file=AnchorFile(path),
        anchor_interval=3600,
    )
    trail.append([AuditEntry(1, "ingest", "logs")] * 3)
    trail.flush()
    trail.anchor_if_due()  # due: the first write
    trail.append([AuditEntry(2, "ingest", "logs")])
    trail.flush()
    trail.anchor_if_due()  # not due for an hour: nothing
    assert [a.seq for a in AnchorFile(path).latest().values()] == [3]
    trail.close()  # the closing record (Seq 5) is anchored
    (latest,) = AnchorFile(path).latest().values()
    assert (latest.chain_id, latest.seq) == ("c", 5)

    # A crash in the middle of a write leaves a cut last line: skipped. A damaged line
    # elsewhere is an error naming it.
    text = path.read_text()
    path.write_text(text + '{"chain": "c", "seq": 6, "ha')
    assert AnchorFile(path).latest()["c"].seq == 5
    path.write_text('{"chain": "c"}\n' + text)
    with pytest.raises(ValueError, match="line 1 is not an anchor"):
        AnchorFile(path).latest()

    # An anchor file that cannot be written is counted and logged; records still flow.
    blocked = AuditTrail(
        Sink(), telemetry.registry, chain_id="d", flush_interval=60, anchor_file=AnchorFile(tmp_path)
    )
    blocked.append([AuditEntry(1, "ingest", "logs")])
    blocked.flush()
    blocked.anchor()
    assert blocked.pending == 0
    assert (
        telemetry.registry.get_sample_value("otel_receiver_audit_anchors_total", {"outcome": "failed"}) == 1
    )


def test_anchor_problems_name_each_way_a_store_can_fall_short() -> None:
    anchor = Anchor("c", 5, "a" * 64, 0)
    assert anchor_problems([anchor], {"c": (7, "a" * 64)}) == []  # the chain went on after it
    (gone,) = anchor_problems([anchor], {})
    assert "no record of the chain is stored" in gone
    (cut,) = anchor_problems([anchor], {"c": (3, "")})
    assert "the store ends at Seq 3: records removed from the end" in cut
    (hole,) = anchor_problems([anchor], {"c": (7, "")})
    assert "the anchored record Seq 5" in hole and "is missing" in hole
    (rewritten,) = anchor_problems([anchor], {"c": (7, "b" * 64)})
    assert "another RecordHash than its anchor" in rewritten
