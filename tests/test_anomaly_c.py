"""The anomaly processor's per-span loop in C (``processors/anomaly/_series.c``) against
its Python loop: the same flags, spliced bytes, series (keys, LRU order, detector states
to the bit), episodes and counters for every span shape, the Python loop wherever the C
code declines, and the series table's own contract."""

from __future__ import annotations

import gc
import json
import logging
import random
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from prometheus_client import generate_latest

from bench.workload import generate_trace_requests
from otel_receiver.component import Batch, ComponentSettings, RequestContext, Signal
from otel_receiver.telemetry import SelfTelemetry
from processors.anomaly import AnomalyConfig, AnomalyProcessor
from processors.anomaly.detector import native_core
from processors.anomaly.processor import KINDS as KINDS_ARG
from processors.anomaly.processor import PythonSeriesTable
from semconv import attributes as a
from tests.protobuf_wire import client_encoding, field

T0 = 1_767_225_600 * 10**9  # 2026-01-01
S = 10**9
native = native_core()


def test_the_extension_is_built() -> None:
    """Optional at install time; here it must have been built, or the suite would test
    only the fallback without saying so."""
    assert native is not None and hasattr(native, "SeriesTable")


class RecordingHost:
    """Keeps the episode records the processor submits (the runtime's Host in the
    end-to-end tests)."""

    def __init__(self) -> None:
        self.submitted: list[bytes] = []

    def submit(self, signal: Signal, batch: Batch, context: RequestContext) -> bool:
        assert signal is Signal.LOGS
        for resource in batch.resource_logs:
            for scope in resource.scope_logs:
                for record in scope.log_records:
                    record.observed_time_unix_nano = 0  # the wall clock at submission
        self.submitted.append(batch.SerializeToString())
        return True


def _processor(
    config: dict[str, Any], native_loop: bool
) -> tuple[AnomalyProcessor, SelfTelemetry, RecordingHost]:
    telemetry, host = SelfTelemetry(), RecordingHost()
    settings = ComponentSettings("anomaly", telemetry, logging.getLogger("test.anomaly_c"), host=host)
    proc = AnomalyProcessor(AnomalyConfig(**config), settings)
    if not native_loop:
        proc.native_loop = False
        proc._series = PythonSeriesTable()
    return proc, telemetry, host


def _run(config: dict[str, Any], bodies: list[bytes], native_loop: bool) -> dict[str, Any]:
    """Everything observable after the processor has seen ``bodies`` in turn."""
    proc, telemetry, host = _processor(config, native_loop)
    outputs = []
    for body in bodies:
        batch = ExportTraceServiceRequest.FromString(body)
        context = RequestContext()
        context.set_wire(batch, body, from_client=True)
        out = proc.process_traces(batch, context)
        assert out is batch
        wire = context.wire_for(batch)
        assert wire is None or ExportTraceServiceRequest.FromString(wire) == batch
        outputs.append(batch.SerializeToString(deterministic=True))
    episodes = {k: (e.start_ns, e.end_ns, e.peak, e.flagged) for k, e in proc._episodes.items()}
    return {
        "outputs": outputs,
        "snapshot": json.dumps(proc.snapshot()),  # detector states to the bit (repr of floats)
        "labels": [s.labels for s in proc._series.values()],
        "episodes": list(episodes.items()),
        "submitted": host.submitted,
        "metrics": [
            line
            for line in generate_latest(telemetry.registry).splitlines()
            if line.startswith(b"otel_receiver_anomaly") and b"_created" not in line
        ],
    }


def _assert_same(config: dict[str, Any], bodies: list[bytes]) -> dict[str, Any]:
    by_c = _run(config, bodies, native_loop=True)
    by_python = _run(config, bodies, native_loop=False)
    for key in by_c:
        assert by_c[key] == by_python[key], key
    return by_c


# --- generated spans ------------------------------------------------------------------

_TEXTS = ["", "svc", "openai", "chat", "gpt-4o", "o3", "é", "GET /api"]
KEYS = [
    a.SERVICE_NAME, a.GEN_AI_OPERATION_NAME, a.GEN_AI_PROVIDER_NAME, a.GEN_AI_REQUEST_MODEL,
    a.GEN_AI_USAGE_INPUT_TOKENS, a.GEN_AI_USAGE_OUTPUT_TOKENS, a.GEN_AI_USAGE_COST,
    a.ANOMALY_FLAGGED, a.ANOMALY_KINDS, a.ANOMALY_SCORE, "tenant", "other",
]  # fmt: skip


def _value(draw: st.DrawFn, texts_only: bool = False) -> AnyValue:
    v = AnyValue()
    kind = draw(
        st.sampled_from(["s"] if texts_only else ["s", "s", "s", "b", "i", "i", "d", "d", "y", "a", "none"])
    )
    if kind == "s":
        v.string_value = draw(st.sampled_from(_TEXTS))
    elif kind == "b":
        v.bool_value = draw(st.booleans())
    elif kind == "i":
        v.int_value = draw(st.one_of(st.integers(-5, 5000), st.integers(-(2**63), 2**63 - 1)))
    elif kind == "d":
        v.double_value = draw(
            st.one_of(
                st.sampled_from([0.0, -0.0, 0.001, 0.1, 1e16, 1.5, 1000.0]),
                st.floats(allow_nan=True, allow_infinity=True),
            )
        )
    elif kind == "y":
        v.bytes_value = draw(st.binary(max_size=3))
    elif kind == "a":
        v.array_value.values.add(string_value="x")
    return v


@st.composite
def request_bodies(draw: st.DrawFn, texts_only: bool = False) -> list[bytes]:
    """A few requests in event-time order, spans mostly on a handful of series so that
    the detectors warm up, with every value type on every key the processor reads."""
    bodies = []
    clock = T0
    for _ in range(draw(st.integers(1, 4))):
        req = ExportTraceServiceRequest()
        for _ in range(draw(st.integers(1, 2))):
            rs = req.resource_spans.add()
            for _ in range(draw(st.integers(0, 2))):
                rs.resource.attributes.add(
                    key=draw(st.sampled_from([a.SERVICE_NAME, "tenant"]))
                ).value.CopyFrom(_value(draw, texts_only))
            ss = rs.scope_spans.add()
            for _ in range(draw(st.integers(0, 30))):
                clock += draw(st.sampled_from([0, 10**6, S, 30 * S, 200 * S]))
                span = ss.spans.add(name=draw(st.sampled_from(_TEXTS)))
                span.status.code = draw(st.sampled_from([0, 0, 0, 1, 2, 2]))
                span.start_time_unix_nano = draw(st.sampled_from([clock, clock, clock, 0]))
                span.end_time_unix_nano = draw(
                    st.sampled_from([0, clock - S, clock + S // 2, clock + S, clock + 40 * S, 2**64 - 1])
                    if draw(st.integers(0, 5)) == 0
                    else st.integers(clock, clock + 2 * S)
                )
                for key in draw(st.lists(st.sampled_from(KEYS), max_size=9)):  # duplicates: the last wins
                    kv = span.attributes.add(key=key)
                    if key in (a.GEN_AI_USAGE_INPUT_TOKENS, a.GEN_AI_USAGE_OUTPUT_TOKENS) and draw(
                        st.booleans()
                    ):
                        kv.value.int_value = draw(st.sampled_from([100, 110, 120, 5000]))
                    elif key == a.GEN_AI_USAGE_COST and draw(st.booleans()):
                        kv.value.double_value = draw(st.sampled_from([0.001, 0.0012, 0.5]))
                    elif draw(st.integers(0, 9)):
                        kv.value.CopyFrom(_value(draw, texts_only))
        bodies.append(req.SerializeToString())
    return bodies


# Detectors that score after a few points, so generated series get flagged.
EAGER = {"warmup": 3, "refractory": 0, "alarm_z": 1.0}
CONFIGS = [
    {"detector": EAGER, "threshold": 0.05, "error_rate_threshold": 0.05, "error_rate_min_errors": 1},
    {"detector": EAGER, "threshold": 0.2, "max_series": 2},
    {"detector": EAGER, "threshold": 0.05, "dimensions": ["service.name", "span.name", "tenant"],
     "non_genai_dimensions": [], "signals": {"latency": False}},
    {"detector": EAGER, "threshold": 0.1, "non_genai_dimensions": ["span.name", "service.name"],
     "max_series": 3, "signals": {"error_rate": False, "cost": False}},
]  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request_bodies(), st.sampled_from(range(len(CONFIGS))))
def test_c_loop_flags_what_the_python_loop_flags(bodies: list[bytes], config: int) -> None:
    _assert_same(CONFIGS[config], bodies)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request_bodies(texts_only=True), st.integers(0, 2**32))
def test_a_clients_encoding_flags_the_same(bodies: list[bytes], seed: int) -> None:
    """Another field order, padded lengths, split messages: the C code reads them as the
    parser does, or declines and the Python loop runs."""
    rng = random.Random(seed)
    encoded = [client_encoding(b, "ExportTraceServiceRequest", rng, 0.3) for b in bodies]
    assert _run(CONFIGS[0], encoded, True) == _run(CONFIGS[0], bodies, False)


def test_flags_unflags_and_evictions_agree() -> None:
    """Each event the C loop hands back (flag, unflag, eviction) on a request certain to
    hold them all."""
    rng = random.Random(5)
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(400):
        span = ss.spans.add(name="chat")
        span.start_time_unix_nano = T0 + i * S
        slow = i in (200, 300)
        span.end_time_unix_nano = span.start_time_unix_nano + (
            30 * S if slow else int(rng.uniform(0.9, 1.1) * S)
        )
        span.attributes.add(key=a.GEN_AI_OPERATION_NAME).value.string_value = "chat"
        span.attributes.add(key=a.GEN_AI_REQUEST_MODEL).value.string_value = (
            f"m{i % 3}" if i < 350 else f"n{i}"
        )
        if i % 50 == 7:
            span.attributes.add(key=a.ANOMALY_SCORE).value.double_value = 0.9
    result = _assert_same({"max_series": 4, "detector": EAGER, "threshold": 0.3}, [req.SerializeToString()])
    out = ExportTraceServiceRequest.FromString(result["outputs"][0])
    keys = [{kv.key for kv in span.attributes} for span in out.resource_spans[0].scope_spans[0].spans]
    flagged = [i for i, k in enumerate(keys) if a.ANOMALY_FLAGGED in k]
    assert 200 in flagged and 300 in flagged
    unflagged = [i for i in range(7, 400, 50) if i not in flagged]
    assert unflagged and all(a.ANOMALY_SCORE not in keys[i] for i in unflagged)
    # 3 + 50 series through a table of 4
    assert b'otel_receiver_anomaly_series_evicted_total{component="anomaly"} 49.0' in result["metrics"]


def test_the_benchmark_workload_flags_the_same() -> None:
    bodies = [r.SerializeToString() for r in generate_trace_requests(20, 100, seed=3, pii_fraction=0.1)]
    _assert_same({}, bodies)
    _assert_same({"detector": EAGER, "threshold": 0.3}, bodies)


# --- declined requests ----------------------------------------------------------------


def _table(proc: AnomalyProcessor) -> Any:
    assert proc.native_loop
    return proc._series


@pytest.mark.parametrize("bytes_service", [True, False], ids=["bytes", "control"])
def test_a_declined_request_changes_nothing_then_runs_in_python(bytes_service: bool) -> None:
    proc, _, _ = _processor({}, native_loop=True)
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    spans = rs.scope_spans.add().spans
    for i in range(3):
        span = spans.add(name="chat", start_time_unix_nano=T0 + i * S, end_time_unix_nano=T0 + i * S + S)
        span.attributes.add(key=a.GEN_AI_OPERATION_NAME).value.string_value = "chat"
    service = rs.resource.attributes.add(key=a.SERVICE_NAME).value
    if bytes_service:
        service.bytes_value = b"\x01"  # str(b"\x01") in Python: declined by the C code
    else:
        service.string_value = "ok"
    result = _table(proc).flag(req.SerializeToString(), 0)
    assert (result is None) == bytes_service
    if bytes_service:
        assert len(proc._series) == 0
        proc.process_traces(req, RequestContext())  # the Python loop
        assert proc._series.keys() == [(True, "b'\\x01'", "", "", "chat")]
    else:
        assert proc._series.keys() == [(True, "ok", "", "", "chat")]


@pytest.mark.parametrize(
    "body",
    [b"\x0a\x05\x12\x03\x12\x01", b"\x0a\xff", b"\x0a\x04\x12\x02\x12\x00\x08", b"\x0b"],
    ids=["truncated span", "bad length", "trailing varint", "group wire type"],
)
def test_malformed_bytes_are_declined(body: bytes) -> None:
    proc, _, _ = _processor({}, native_loop=True)
    assert _table(proc).flag(body, 7) is None
    assert len(proc._series) == 0


@pytest.mark.parametrize(
    "name, valid",
    [
        (b"\xc3\x28", False),  # a lead byte without its continuation
        (b"ascii-run-of-16b\xc3\x28", False),  # past the eight-byte ASCII steps
        (b"ascii-run\xff", False),
        (b"ascii-run-of-16b\xed\xa0\x80", False),  # a surrogate
        (b"ascii-run-of-16b\xc3\xa9t\xc3\xa9-longer-than-8", True),
        (b"12345678", True),
    ],
)
def test_invalid_utf8_in_a_key_text_is_declined(name: bytes, valid: bool) -> None:
    proc, _, _ = _processor({}, native_loop=True)
    span = b"\x2a" + bytes([len(name)]) + name  # a non-GenAI span keyed by its name
    body = field(1, field(2, field(2, span)))  # resource_spans / scope_spans / spans
    assert (_table(proc).flag(body, 0) is not None) == valid
    if valid:
        [key] = proc._series.keys()
        assert key[-1] == name.decode()


# --- the table ------------------------------------------------------------------------


def _native_table(max_series: int = 3) -> Any:
    proc, _, _ = _processor({"max_series": max_series}, native_loop=True)
    return _table(proc)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["touch", "insert", "pop"]), st.integers(0, 40)), max_size=200))
def test_table_keeps_the_order_an_ordered_dict_keeps(ops: list[tuple[str, int]]) -> None:
    table, reference = _native_table(), PythonSeriesTable()
    for op, n in ops:
        key = (n % 2 == 0, f"s{n}", "é" * (n % 3))
        if op == "touch":
            assert table.touch(key) is reference.touch(key)
        elif op == "insert":
            if reference.touch(key) is None:
                series = object()
                table.insert(key, series)
                reference.insert(key, series)
            else:
                table.touch(key)
                with pytest.raises(KeyError):
                    table.insert(key, object())
        elif len(reference):
            assert table.pop_oldest() == reference.pop_oldest()
        else:
            with pytest.raises(KeyError):
                table.pop_oldest()
        assert table.keys() == reference.keys() and table.values() == reference.values()
        assert len(table) == len(reference)


def test_table_refuses_keys_it_cannot_encode() -> None:
    table = _native_table()
    for bad in [("svc",), (), [True, "svc"], (True, 1), (1, "svc")]:
        with pytest.raises(TypeError):
            table.touch(bad)
    with pytest.raises(UnicodeEncodeError):
        table.insert((True, "\ud800"), object())


def test_table_releases_what_it_evicts() -> None:
    table = _native_table()
    series = object()
    before = sys.getrefcount(series)
    table.insert((True, "a"), series)
    assert sys.getrefcount(series) == before + 1
    assert table.pop_oldest() == ((True, "a"), series)
    assert sys.getrefcount(series) == before


def test_detectors_made_by_python_are_shared_with_c() -> None:
    """A declined request's Python loop gives a series its detectors; the C loop then
    updates those same objects rather than making its own."""
    proc, _, _ = _processor({}, native_loop=True)
    req = ExportTraceServiceRequest()
    span = (
        req.resource_spans.add()
        .scope_spans.add()
        .spans.add(name="x", start_time_unix_nano=T0, end_time_unix_nano=T0 + S)
    )
    span.attributes.add(key=a.GEN_AI_OPERATION_NAME).value.string_value = "chat"
    proc._python_process(req, RequestContext(), req.SerializeToString())
    (series,) = proc._series.values()
    latency = series.latency
    assert latency is not None and latency.n == 1
    assert proc._series.flag(req.SerializeToString(), 0) is not None
    assert series.latency is latency and latency.n == 2


def test_a_configuration_beyond_the_c_limits_runs_in_python() -> None:
    dims = [f"d{i}" for i in range(70)]
    proc, _, _ = _processor({"dimensions": dims}, native_loop=True)
    assert not proc.native_loop and isinstance(proc._series, PythonSeriesTable)
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add(name="x", start_time_unix_nano=T0)
    span.attributes.add(key=a.GEN_AI_OPERATION_NAME).value.string_value = "chat"
    proc.process_traces(req, RequestContext())
    assert len(proc._series) == 1


def test_a_table_whose_init_failed_or_never_ran_is_freed_safely() -> None:
    """Its lists start empty at allocation: clearing, traversing and freeing it is safe
    (a failed __init__ used to leave them pointing at entry 0 of no array)."""
    assert native is not None
    proc, _, _ = _processor({}, native_loop=True)
    table = _table(proc)
    with pytest.raises(RuntimeError, match="runs once"):
        table.__init__(*([None] * 13))
    args = dict(
        max_series=0, new_series=print, new_detector=print, kind_names=KINDS_ARG, keys=("k",),
        resource_keys=(), genai_plan=(), non_genai_plan=(), value_slots=(0,) * 8, kinds_on=(True,) * 4,
        threshold_z=1.0, error_threshold_z=1.0, score_k=5.0,
    )  # fmt: skip
    for _ in range(3):
        with pytest.raises(ValueError, match="max_series"):
            native.SeriesTable(**args)
        gc.collect()
    bare = native.SeriesTable.__new__(native.SeriesTable)
    series = object()
    bare.insert((True, "a"), series)
    assert bare.keys() == [(True, "a")] and bare.touch((True, "a")) is series
    with pytest.raises(RuntimeError, match="__init__ was not called"):
        bare.flag(b"", 0)
    del bare
    gc.collect()
