"""The benchmark workload generator: deterministic, exact sizes, valid GenAI shapes and PII."""

from __future__ import annotations

import json
import random
import re
import struct
from pathlib import Path

import phonenumbers
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench import workload
from otel_receiver.component import count_items
from semconv import attributes as sc

T0 = 1_763_700_000_000_000_000


def _spans(req: ExportTraceServiceRequest):  # type: ignore[no-untyped-def]
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            yield from ss.spans


def _attrs(span) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in span.attributes}


def test_same_seed_gives_identical_bytes_and_other_seed_differs() -> None:
    a = workload.generate_trace_requests(3, 50, seed=7, start_time_ns=T0)
    b = workload.generate_trace_requests(3, 50, seed=7, start_time_ns=T0)
    c = workload.generate_trace_requests(3, 50, seed=8, start_time_ns=T0)
    assert [r.SerializeToString() for r in a] == [r.SerializeToString() for r in b]
    assert a[0].SerializeToString() != c[0].SerializeToString()


def test_exact_span_count_and_well_formed_traces() -> None:
    reqs = workload.generate_trace_requests(20, 37, seed=3, start_time_ns=T0)
    for req in reqs:
        assert count_items(req) == 37
        spans = list(_spans(req))
        ids = {s.span_id for s in spans}
        for s in spans:
            assert len(s.trace_id) == 16 and len(s.span_id) == 8
            assert s.end_time_unix_nano >= s.start_time_unix_nano >= T0
            # A parent, when present in the request, belongs to the same trace.
            if s.parent_span_id in ids:
                parent = next(p for p in spans if p.span_id == s.parent_span_id)
                assert parent.trace_id == s.trace_id
        for rs in req.resource_spans:
            resource = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
            assert resource[sc.SERVICE_NAME]


def test_genai_spans_follow_the_conventions() -> None:
    reqs = workload.generate_trace_requests(30, 100, seed=11, start_time_ns=T0)
    ops: set[str] = set()
    providers: set[str] = set()
    saw_cache = saw_reasoning = saw_error = False
    for req in reqs:
        for span in _spans(req):
            a = _attrs(span)
            op = a.get(sc.GEN_AI_OPERATION_NAME)
            if op is None:
                continue
            ops.add(str(op))
            if op in (sc.OP_CHAT, sc.OP_GENERATE_CONTENT):
                providers.add(str(a[sc.GEN_AI_PROVIDER_NAME]))
                assert span.name == f"{op} {a[sc.GEN_AI_REQUEST_MODEL]}"
                messages = json.loads(str(a[sc.GEN_AI_INPUT_MESSAGES]))
                assert messages[0]["role"] == "user" and messages[0]["parts"][0]["type"] == "text"
                if span.status.code == 2:
                    saw_error = True
                    assert a[sc.ERROR_TYPE]
                    continue
                inp = int(a[sc.GEN_AI_USAGE_INPUT_TOKENS])  # type: ignore[call-overload]
                out = int(a[sc.GEN_AI_USAGE_OUTPUT_TOKENS])  # type: ignore[call-overload]
                cache = int(a.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 0))  # type: ignore[call-overload]
                reasoning = int(a.get(sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, 0))  # type: ignore[call-overload]
                assert 0 <= cache <= inp and 0 <= reasoning <= out
                saw_cache |= cache > 0
                saw_reasoning |= reasoning > 0
                json.loads(str(a[sc.GEN_AI_OUTPUT_MESSAGES]))
            if op == sc.OP_EXECUTE_TOOL:
                assert span.name == f"execute_tool {a[sc.GEN_AI_TOOL_NAME]}"
                json.loads(str(a[sc.GEN_AI_TOOL_CALL_ARGUMENTS]))
    assert {sc.OP_INVOKE_AGENT, sc.OP_CHAT, sc.OP_EXECUTE_TOOL, sc.OP_EMBEDDINGS} <= ops
    assert sc.OP_GENERATE_CONTENT in ops
    assert {"openai", "anthropic", "gcp.gemini", "aws.bedrock", "azure.ai.openai", "mistral_ai"} <= providers
    assert saw_cache and saw_reasoning and saw_error


def test_pii_fraction_is_honoured() -> None:
    markers = re.compile(r"reach me at|Contact: |IBAN |my card |API_KEY=|aws_access_key_id")

    def share(fraction: float) -> float:
        with_pii = total = 0
        for req in workload.generate_trace_requests(40, 100, seed=5, pii_fraction=fraction, start_time_ns=T0):
            for span in _spans(req):
                for kv in span.attributes:
                    if kv.key == sc.GEN_AI_INPUT_MESSAGES:
                        total += 1
                        with_pii += bool(markers.search(kv.value.string_value))
        return with_pii / total

    assert share(0.0) == 0.0
    assert 0.2 < share(0.3) < 0.4
    assert share(1.0) == 1.0


def test_pii_values_are_valid_of_their_kind() -> None:
    rng = random.Random(1)
    for _ in range(200):
        pii = workload.make_pii(rng)
        assert workload.luhn_valid(pii.card)
        assert workload.iban_valid(pii.iban)
        assert phonenumbers.is_valid_number(phonenumbers.parse(pii.phone))
        assert re.fullmatch(r"AKIA[A-Z2-7]{16}", pii.aws_key)
        assert re.fullmatch(r"[\w.+-]+@[\w-]+(\.[\w-]+)+", pii.email)
    assert workload.iban_valid("GB82 WEST 1234 5698 7654 32")  # the ISO 13616 example
    assert not workload.luhn_valid("4111111111111112")


def test_metrics_and_logs_requests() -> None:
    metrics = workload.generate_metrics_requests(5, 40, seed=2, start_time_ns=T0)
    for req in metrics:
        assert count_items(req) >= 40
        names = {m.name for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
        assert names == {workload.METRIC_TOKEN_USAGE, workload.METRIC_OPERATION_DURATION}
        for rm in req.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    for dp in m.histogram.data_points:
                        assert sum(dp.bucket_counts) == dp.count
                        assert len(dp.bucket_counts) == len(dp.explicit_bounds) + 1
    logs = workload.generate_logs_requests(5, 60, seed=2, start_time_ns=T0)
    assert all(count_items(r) == 60 for r in logs)
    events = [
        lr
        for r in logs
        for rl in r.resource_logs
        for sl in rl.scope_logs
        for lr in sl.log_records
        if lr.event_name == workload.EVENT_INFERENCE_DETAILS
    ]
    assert events


def test_cli_writes_bodies_for_the_drivers(tmp_path: Path) -> None:
    args = ["--out", str(tmp_path), "--spans-per-request", "20", "--start-time-ns", str(T0)]
    assert workload.main(args) == 0
    pb = (tmp_path / "traces.pb").read_bytes()
    req = ExportTraceServiceRequest.FromString(pb)
    assert count_items(req) == 20
    frame = (tmp_path / "traces.grpc").read_bytes()
    assert frame[0] == 0 and struct.unpack(">I", frame[1:5])[0] == len(pb) and frame[5:] == pb
    doc = json.loads((tmp_path / "traces.json").read_bytes())
    span = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert re.fullmatch(r"[0-9a-f]{32}", span["traceId"]) and re.fullmatch(r"[0-9a-f]{16}", span["spanId"])
    assert isinstance(span["kind"], int)
    for name in ("metrics.pb", "logs.pb", "metrics.json", "logs.json", "metrics.grpc", "logs.grpc"):
        assert (tmp_path / name).stat().st_size > 0


def test_metrics_generator_handles_intervals_without_calls() -> None:
    from bench.workload import generate_metrics_requests

    # seed 7 reaches an interval with no calls within 200 requests: count 0, no min/max
    requests = generate_metrics_requests(200, seed=7)
    assert len(requests) == 200
    empty = [
        dp
        for r in requests
        for rm in r.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.WhichOneof("data") == "histogram"
        for dp in m.histogram.data_points
        if dp.count == 0
    ]
    assert empty and all(not dp.HasField("min") and sum(dp.bucket_counts) == 0 for dp in empty)


def test_cli_writes_an_incident_day_with_its_ground_truth(tmp_path: Path) -> None:
    """`--incidents HOURS`: the incident suite's traffic as requests to replay, and where
    the incidents are; the data agrees with the truth file."""
    args = ["--out", str(tmp_path), "--incidents", "2", "--seed", "7", "--start-time-ns", str(T0)]
    assert workload.main(args) == 0
    truth = json.loads((tmp_path / "incidents.json").read_text())
    requests = [ExportTraceServiceRequest.FromString(p.read_bytes()) for p in sorted(tmp_path.glob("*.pb"))]
    assert len(requests) == truth["requests"]
    assert sum(count_items(r) for r in requests) == truth["spans"]
    incidents = {inc["name"]: inc for inc in truth["incidents"]}
    assert set(incidents) == {"latency_x5", "error_burst", "token_explosion", "price_change"}
    day_end = T0 + 2 * 3600 * 10**9
    for inc in incidents.values():
        assert T0 < inc["start_ns"] < day_end
        assert set(inc["series"]) == {
            sc.SERVICE_NAME, sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_REQUEST_MODEL, sc.GEN_AI_OPERATION_NAME
        }  # fmt: skip

    def calls(name: str) -> tuple[list[object], list[object]]:
        """(spans of the incident's series inside its window, outside it)."""
        inc = incidents[name]
        inside, outside = [], []
        for req in requests:
            for rs in req.resource_spans:
                service = next(
                    kv.value.string_value for kv in rs.resource.attributes if kv.key == sc.SERVICE_NAME
                )
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        attrs = {**_attrs(span), sc.SERVICE_NAME: service}
                        if any(attrs.get(k) != v for k, v in inc["series"].items()):
                            continue
                        end = inc["end_ns"] or day_end
                        in_window = inc["start_ns"] <= span.start_time_unix_nano < end
                        (inside if in_window else outside).append(span)
        return inside, outside

    inside, outside = calls("latency_x5")
    duration = [
        sorted(s.end_time_unix_nano - s.start_time_unix_nano for s in group) for group in (inside, outside)
    ]
    assert duration[0][len(duration[0]) // 2] > 3 * duration[1][len(duration[1]) // 2]
    inside, outside = calls("error_burst")
    errors = [sum(s.status.code == 2 for s in group) / len(group) for group in (inside, outside)]
    assert errors[0] > 0.1 > errors[1]
