"""The span metrics summed in C (``exporters/prometheus/_spanmetrics.c``) against the Python
aggregation over the protobuf objects: the same series, sums, exemplars and insertion
order for every span shape, the Python path wherever the C code declines, and no crash
on any input."""

from __future__ import annotations

import contextlib
import math
import random
import time
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from bench.workload import generate_trace_requests
from exporters.prometheus import PrometheusExporter, _spanmetrics, spanmetrics
from exporters.prometheus.spanmetrics import BatchAggregate
from otel_receiver import spanscan
from otel_receiver.component import RequestContext
from tests.protobuf_wire import client_encoding
from tests.test_prometheus_helpers import export, make_exporter, samples_of, scrape

KEYS = spanmetrics._SPAN_KEYS
TENANT_MODES = ("auto", "always", "never")


def test_the_extension_is_built() -> None:
    """Optional at install time; here it must have been built, or the suite would test
    only the fallback without saying so."""
    assert spanmetrics._spanmetrics is not None


def _same(a: object, b: object) -> bool:
    """Equality that treats NaN as equal to itself, tells 1 from 1.0 and True, and
    compares dicts in insertion order (the order the merge meets new series in)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple))
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


def _fields(agg: BatchAggregate) -> tuple[dict[Any, Any], ...]:
    return (agg.tokens, agg.duration, agg.cost, agg.cost_spans, agg.anomalies, agg.pii)


def _by_objects(
    req: ExportTraceServiceRequest, context: RequestContext, mode: str, internal: bool
) -> BatchAggregate:
    saved = spanscan._spanscan
    spanscan._spanscan = None  # the rows from the protobuf objects
    try:
        default = "" if mode == "never" else context.tenant or ("unknown" if mode == "always" else "")
        return spanmetrics.python_aggregate_spans(req, None, default, mode != "never", internal)
    finally:
        spanscan._spanscan = saved


def _assert_same(
    req: ExportTraceServiceRequest,
    context: RequestContext | None = None,
    mode: str = "auto",
    internal: bool = False,
) -> BatchAggregate:
    context = context or RequestContext()
    by_c = spanmetrics.aggregate_spans(req, context, mode, internal)
    by_objects = _by_objects(req, context, mode, internal)
    assert _same(_fields(by_c), _fields(by_objects)), (by_c, by_objects)
    return by_c


def _accumulator() -> _spanmetrics.Accumulator:
    return _spanmetrics.Accumulator(
        KEYS, spanmetrics._AGENT_OPERATIONS, spanmetrics.TOKEN_BUCKETS, spanmetrics.DURATION_BUCKETS
    )


def _aggregate_in_c(wire: bytes, tenant: str = "", read_tenant: bool = True) -> Any:
    accumulator = _accumulator()
    accumulator.add((wire,), tenant, read_tenant, False)
    return accumulator.drain()


# --- generated spans ------------------------------------------------------------------

_TEXTS = ["", "openai", "anthropic", "chat", "invoke_agent", "execute_tool", "gpt-4o", "acme", "timeout", "é"]


def _value(draw: st.DrawFn, depth: int = 0) -> AnyValue:
    v = AnyValue()
    kind = draw(
        st.sampled_from(["s", "s", "s", "b", "i", "d", "y", "a", "m", "none"] if depth < 2 else ["s", "i"])
    )
    if kind == "s":
        v.string_value = draw(st.sampled_from(_TEXTS))
    elif kind == "b":
        v.bool_value = draw(st.booleans())
    elif kind == "i":
        v.int_value = draw(
            st.one_of(
                st.sampled_from([0, 1, 4, 16, 1024, 65536]),  # bucket bounds: inclusive
                st.integers(-5, 70000),
                st.integers(-(2**63), 2**63 - 1),
            )
        )
    elif kind == "d":
        v.double_value = draw(
            st.one_of(
                st.sampled_from([0.0, -0.0, 0.1, 0.2, 2.5e-7, 1e25, 1e22, 4.5e9, 0.5e-9, 1.5e-9]),
                st.floats(allow_nan=True, allow_infinity=True),
            )
        )
    elif kind == "y":
        v.bytes_value = draw(st.binary(max_size=4))
    elif kind == "a":
        for _ in range(draw(st.integers(0, 3))):
            v.array_value.values.add().CopyFrom(_value(draw, depth + 1))
    elif kind == "m":
        kv = v.kvlist_value.values.add(key="x")
        kv.value.CopyFrom(_value(draw, depth + 1))
    return v


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        rs = req.resource_spans.add()
        for _ in range(draw(st.integers(0, 2))):
            rs.resource.attributes.add(key="service.name").value.CopyFrom(_value(draw, 2))
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            for _ in range(draw(st.integers(0, 4))):
                span = ss.spans.add(name="s")
                span.kind = draw(st.sampled_from([0, 1, 2, 3, 3, -1, 9]))
                span.status.code = draw(st.integers(0, 3))
                span.start_time_unix_nano = draw(st.integers(0, 2**64 - 1))
                span.end_time_unix_nano = draw(
                    st.one_of(
                        st.integers(0, 2**64 - 1),
                        st.just(span.start_time_unix_nano),
                        st.sampled_from(  # on duration bucket bounds (0.01 s, 0.02 s, 0.64 s)
                            [
                                min(2**64 - 1, span.start_time_unix_nano + d)
                                for d in (10**7, 2 * 10**7, 64 * 10**7)
                            ]
                        ),
                        st.integers(
                            span.start_time_unix_nano, min(2**64 - 1, span.start_time_unix_nano + 10**11)
                        ),
                    )
                )
                span.trace_id = draw(st.binary(min_size=0, max_size=16))
                span.span_id = draw(st.binary(min_size=0, max_size=8))
                for _ in range(draw(st.integers(0, 8))):  # duplicates: the last one wins
                    kv = span.attributes.add(key=draw(st.sampled_from([*KEYS, "other"])))
                    if draw(st.integers(0, 9)):
                        kv.value.CopyFrom(_value(draw))
    return req


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.sampled_from(TENANT_MODES), st.sampled_from(["", "acme", "é"]), st.booleans())
def test_c_sums_what_the_python_loop_sums(
    req: ExportTraceServiceRequest, mode: str, tenant: str, internal: bool
) -> None:
    _assert_same(req, RequestContext(tenant=tenant or None), mode, internal)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.integers(0, 2**32))
def test_a_clients_encoding_sums_the_same(req: ExportTraceServiceRequest, seed: int) -> None:
    """Another field order, padded lengths, split resources and statuses: the C code reads
    them as the parser does, or declines and Python sums from the objects."""
    wire = client_encoding(req.SerializeToString(), "ExportTraceServiceRequest", random.Random(seed), 0.3)
    parsed = ExportTraceServiceRequest.FromString(wire)
    context = RequestContext()
    context.set_wire(parsed, wire, from_client=True)
    by_c = spanmetrics.aggregate_spans(parsed, context, "auto")
    assert _same(_fields(by_c), _fields(_by_objects(req, RequestContext(), "auto", False)))


def test_coalesced_requests_sum_as_their_merge() -> None:
    """The sending queue hands the exporter several requests and their bytes as pieces:
    read piece by piece, they sum as the merged request does, exemplars included."""
    parts = generate_trace_requests(5, 60, seed=21, pii_fraction=0.3)
    context = RequestContext()
    context.set_wire(parts, tuple(p.SerializeToString() for p in parts))
    merged = ExportTraceServiceRequest()
    for p in parts:
        merged.MergeFrom(p)
    by_pieces = spanmetrics.aggregate_spans(parts, context, "auto")
    assert _same(_fields(by_pieces), _fields(_by_objects(merged, RequestContext(), "auto", False)))
    assert sum(acc[2] for acc in by_pieces.duration.values()) > 250  # the GenAI spans of 300
    without_wire = spanmetrics.aggregate_spans(parts, RequestContext(), "auto")
    assert _same(_fields(without_wire), _fields(by_pieces))


def test_the_workload_sums_the_same_with_anomalies_redactions_and_costs() -> None:
    rng = random.Random(4)
    for req in generate_trace_requests(4, 100, seed=12, pii_fraction=0.3):
        for span in rng.sample(list(req.resource_spans[0].scope_spans[0].spans), 10):
            kinds = span.attributes.add(key="anomaly.kinds").value.array_value.values
            kinds.add().string_value = "latency"
            span.attributes.add(
                key="pii.redacted.types"
            ).value.array_value.values.add().string_value = "EMAIL"
            span.attributes.add(key="pii.redacted.count").value.int_value = 3
            span.attributes.add(key="gen_ai.usage.cost").value.double_value = rng.choice([0.0123, 2.5e-7])
        agg = _assert_same(req, RequestContext(tenant="acme"))
        assert agg.tokens and agg.duration and agg.cost and agg.anomalies and agg.pii


def test_thousands_of_label_sets_in_one_batch() -> None:
    """Past the first hash table's size: every label set is its own series."""
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for i in range(3000):
        span = spans.add(start_time_unix_nano=10**9, end_time_unix_nano=10**9 + i * 10**6)
        span.attributes.add(key="gen_ai.provider.name").value.string_value = "openai"
        span.attributes.add(key="gen_ai.request.model").value.string_value = f"model-{i % 1500}"
        span.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = i
    agg = _assert_same(req)
    assert len(agg.duration) == 1500
    assert sum(acc[2] for acc in agg.tokens.values()) == 3000


# --- what the C code declines ---------------------------------------------------------


def _span_request(**attributes: float) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "svc"
    span = rs.scope_spans.add().spans.add(start_time_unix_nano=1, end_time_unix_nano=2)
    span.attributes.add(key="gen_ai.provider.name").value.string_value = "openai"
    for key, value in attributes.items():
        v = span.attributes.add(key=key.replace("__", ".")).value
        if isinstance(value, float):
            v.double_value = value
        else:
            v.int_value = value
    return req


def test_a_label_that_is_not_utf8_is_declined() -> None:
    """Two different invalid names would read the same with replacement characters: the
    C code declines rather than count two series where Python counts one. The receiver's
    parser refuses such strings first (proto3), so this guards the bytes only."""
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for model in ("XXabcdef", "YYabcdef", "gpt-4o"):
        span = spans.add(start_time_unix_nano=1, end_time_unix_nano=2)
        span.attributes.add(key="gen_ai.provider.name").value.string_value = "openai"
        span.attributes.add(key="gen_ai.request.model").value.string_value = model
    wire = req.SerializeToString().replace(b"XX", b"\xff\xfe").replace(b"YY", b"\xfe\xff")
    with pytest.raises(ValueError, match="UTF-8"):
        _aggregate_in_c(wire)
    with pytest.raises(DecodeError, match="UTF-8"):
        ExportTraceServiceRequest.FromString(wire)


@pytest.mark.parametrize(
    ("cost", "expected"),
    [
        (0.1, 100_000_000),
        (1.5e-9, 2),  # 1.5 nano-USD: half to even
        (2.5e-9, 2),
        (1e-12, 0),  # a positive cost: its series exists, at 0
        (float("inf"), None),
        (1e300, None),  # infinite in nano-USD
        (float("nan"), None),
        (-1.0, None),
        (0.0, None),
        (7, 7_000_000_000),
        (2**62, 2**62 * 10**9),  # beyond 64 bits once in nano-USD
        (1e25, round(1e25 * 10**9)),  # declined by C (above 1e21 USD), summed by Python
    ],
)
def test_costs_in_nano_usd(cost: float, expected: int | None) -> None:
    """Summed as integers, as genai_calls stores them; no amount that is not one."""
    req = _span_request(gen_ai__usage__cost=cost)
    agg = _assert_same(req)
    base = ("svc", "openai", "", "", "")
    assert agg.cost == ({} if expected is None else {base: expected})


def test_a_cost_too_large_for_c_is_declined() -> None:
    with pytest.raises(ValueError, match="cost"):
        _aggregate_in_c(_span_request(gen_ai__usage__cost=1e25).SerializeToString())


# --- hostile input ------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_or_sum(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        _aggregate_in_c(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_damaged_requests_raise_or_sum(data: st.DataObject) -> None:
    body = bytearray(generate_trace_requests(1, 5, seed=data.draw(st.integers(0, 50)))[0].SerializeToString())
    for _ in range(data.draw(st.integers(1, 4))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(ValueError):
        _aggregate_in_c(bytes(body[: data.draw(st.integers(0, len(body)))]))


def test_wrong_arguments_are_type_errors() -> None:
    agents, bounds = spanmetrics._AGENT_OPERATIONS, spanmetrics.TOKEN_BUCKETS
    with pytest.raises(TypeError):
        _spanmetrics.Accumulator(KEYS[:-1], agents, bounds, bounds)
    with pytest.raises(TypeError):
        _spanmetrics.Accumulator(KEYS, ("a",) * 17, bounds, bounds)
    with pytest.raises(ValueError):
        _spanmetrics.Accumulator(KEYS, agents, tuple(map(float, range(65))), bounds)
    with pytest.raises(TypeError):
        _spanmetrics.Accumulator(KEYS, agents, ("x",), bounds)  # type: ignore[arg-type]
    accumulator = _accumulator()
    with pytest.raises(TypeError):
        accumulator.add(("str",), "", True, False)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        accumulator.add(b"", "", True, False)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _spanmetrics.Accumulator.__new__(_spanmetrics.Accumulator).drain()


# --- the accumulator across requests --------------------------------------------------


def _exporters(**config: Any) -> tuple[PrometheusExporter, PrometheusExporter]:
    """The same exporter twice: sums in C until scraped, and merged per batch in Python."""
    in_c, _ = make_exporter(**config)
    in_python, _ = make_exporter(**config)
    in_python.spans._accumulator = None
    return in_c, in_python


def _exposition(exporter: PrometheusExporter) -> dict[Any, float]:
    samples, _ = samples_of(scrape(exporter, "application/openmetrics-text")[0], openmetrics=True)
    return {
        k: v for k, v in samples.items() if not k[0].startswith(("otel_receiver_", "process_", "python_"))
    }


def _assert_same_exposition(a: PrometheusExporter, b: PrometheusExporter) -> None:
    sa, sb = _exposition(a), _exposition(b)
    assert sa.keys() == sb.keys()
    for key, value in sa.items():
        assert value == pytest.approx(sb[key], rel=1e-12), key  # sums of other batchings


def test_requests_summed_until_a_scrape_expose_what_per_batch_merges_do() -> None:
    in_c, in_python = _exporters(max_series_per_metric=40)
    requests = generate_trace_requests(12, 50, seed=5, pii_fraction=0.3)
    for i, req in enumerate(requests):
        tenant = RequestContext(tenant=("acme", "globex", None)[i % 3])
        for exporter in (in_c, in_python):
            export(exporter, req, tenant)
        if i == 5:
            _assert_same_exposition(in_c, in_python)  # a drain in between
    _assert_same_exposition(in_c, in_python)
    assert in_c.spans._accumulator is not None and in_c.spans._accumulator.series_count() > 0


def test_a_declined_request_is_summed_once_by_python() -> None:
    in_c, in_python = _exporters()
    good = generate_trace_requests(1, 20, seed=8)[0]
    declined = _span_request(gen_ai__usage__cost=1e25)
    for req in (good, declined, good):
        for exporter in (in_c, in_python):
            export(exporter, req)
    _assert_same_exposition(in_c, in_python)


def test_the_accumulator_forgets_label_sets_past_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spanmetrics, "_DRAIN_AT_LABEL_SETS", 50)
    in_c, in_python = _exporters()
    req = ExportTraceServiceRequest()
    spans = req.resource_spans.add().scope_spans.add().spans
    for i in range(120):
        span = spans.add(start_time_unix_nano=1, end_time_unix_nano=2 + i)
        span.attributes.add(key="gen_ai.provider.name").value.string_value = "openai"
        span.attributes.add(key="gen_ai.request.model").value.string_value = f"m{i}"
    for exporter in (in_c, in_python):
        export(exporter, req)
    accumulator = in_c.spans._accumulator
    assert accumulator is not None and accumulator.series_count() == 0  # drained and forgotten
    _assert_same_exposition(in_c, in_python)
    for exporter in (in_c, in_python):
        export(exporter, req)
    _assert_same_exposition(in_c, in_python)


def test_a_drained_accumulator_starts_from_zero() -> None:
    accumulator = _accumulator()
    wire = generate_trace_requests(1, 30, seed=2)[0].SerializeToString()
    accumulator.add((wire,), "", True, False)
    first = accumulator.drain()
    assert first[1] and accumulator.drain() == ({}, {}, {}, {})
    accumulator.add((wire,), "", True, False)
    assert _same(accumulator.drain(), first)
    accumulator.clear()
    accumulator.add((wire, wire), "", True, False)
    doubled = accumulator.drain()
    assert sum(acc[2] for acc in doubled[1].values()) == 2 * sum(acc[2] for acc in first[1].values())


# --- the worker thread ----------------------------------------------------------------


def _invalid_label_request() -> bytes:
    req = _span_request()
    req.resource_spans[0].scope_spans[0].spans[0].attributes.add(
        key="gen_ai.request.model"
    ).value.string_value = "XXabc"
    return req.SerializeToString().replace(b"XX", b"\xff\xfe")


def _worker_threads() -> set[str]:
    """The thread ids of the accumulators' workers in this process, by the name they give
    themselves."""
    import glob

    tids = set()
    for path in glob.glob("/proc/self/task/*/comm"):
        with contextlib.suppress(OSError), open(path) as f:
            if f.read().strip() == "spanmetrics":
                tids.add(path.split("/")[-2])
    return tids


def test_submitted_requests_come_back_in_order_and_sum_as_added_ones() -> None:
    """More requests than the worker's ring holds, declined ones among them: every token
    comes back once, in order; the declined ones as None with nothing summed; the rest
    sum (extras included) exactly as add() sums them in this thread."""
    rng = random.Random(3)
    wires = [r.SerializeToString() for r in generate_trace_requests(150, 20, seed=9, pii_fraction=0.3)]
    flagged = generate_trace_requests(1, 30, seed=10)[0]
    for span in flagged.resource_spans[0].scope_spans[0].spans:
        span.attributes.add(key="anomaly.kinds").value.array_value.values.add().string_value = "latency"
    wires[40] = flagged.SerializeToString()
    declined = {7: _span_request(gen_ai__usage__cost=1e25).SerializeToString(), 77: _invalid_label_request()}
    for i, wire in declined.items():
        wires[i] = wire
    tenants = [rng.choice(["", "acme"]) for _ in wires]
    threaded, inline = _accumulator(), _accumulator()
    results: list[tuple[int, Any]] = []
    for i, wire in enumerate(wires):
        results += threaded.submit(i, (wire,), tenants[i], True, False)
    results += threaded.finish()
    assert threaded.pending() == 0 and threaded.finish() == []
    assert [token for token, _ in results] == list(range(len(wires)))
    for (i, extras), wire in zip(results, wires, strict=True):
        if i in declined:
            assert extras is None
            with pytest.raises(ValueError):
                inline.add((wire,), tenants[i], True, False)
            continue
        assert _same(extras, inline.add((wire,), tenants[i], True, False))
    assert results[40][1] and all(kinds == ["latency"] for _, kinds, *_ in results[40][1])
    assert _same(threaded.drain(), inline.drain())
    assert threaded.series_count() == inline.series_count() > 0


def test_add_is_refused_while_submitted_requests_are_pending() -> None:
    """Its sums would come before theirs. Right after a submit of 3,000 spans the worker
    has not walked them yet (~0.6 ms; the submit returns ~1 us after handing them over)."""
    accumulator = _accumulator()
    wire = generate_trace_requests(1, 3000, seed=1)[0].SerializeToString()
    accumulator.submit(0, (wire,), "", True, False)
    assert accumulator.pending() == 1
    with pytest.raises(RuntimeError, match="submitted"):
        accumulator.add((wire,), "", True, False)
    assert [token for token, _ in accumulator.finish()] == [0]
    accumulator.add((wire,), "", True, False)


def test_an_accumulator_dropped_with_requests_in_flight_stops_its_worker() -> None:
    """Only this accumulator's worker is followed: another accumulator alive in the process
    may start or stop its own meanwhile. pthread_join returns when the thread has released
    its memory, a moment before the kernel removes it from /proc: hence the short wait."""
    before = _worker_threads()
    wires = [r.SerializeToString() for r in generate_trace_requests(100, 50, seed=4)]
    accumulator = _accumulator()
    for i, wire in enumerate(wires):
        accumulator.submit(i, (wire,), "", True, False)
    ours = _worker_threads() - before
    assert len(ours) == 1
    del accumulator  # joins the worker, releases the requests still queued
    deadline = time.monotonic() + 2.0
    while ours & _worker_threads() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert not ours & _worker_threads()


def test_a_forked_child_walks_what_its_parent_had_submitted() -> None:
    """The worker stays in the parent: the child's accumulator walks the requests left
    in the ring itself, starts a worker of its own, and sums as the parent does."""
    import os

    wires = [r.SerializeToString() for r in generate_trace_requests(70, 30, seed=6)]
    accumulator = _accumulator()
    for i, wire in enumerate(wires[:60]):
        accumulator.submit(i, (wire,), "", True, False)
    pid = os.fork()
    if pid == 0:  # the child: its exit code is the verdict
        ok = False
        try:
            results = accumulator.finish()
            ok = accumulator.pending() == 0  # the parent's worker is not here to walk them
            for i, wire in enumerate(wires[60:], start=60):
                results += accumulator.submit(i, (wire,), "", True, False)
            results += accumulator.finish()
            ok = ok and all(extras is not None for _, extras in results) and accumulator.pending() == 0
            child_sums = accumulator.drain()
            inline = _accumulator()
            for wire in wires:
                inline.add((wire,), "", True, False)
            ok = ok and _same(child_sums, inline.drain())
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    accumulator.finish()


def test_the_worker_waits_for_a_few_requests_unless_a_caller_waits() -> None:
    """Woken per request, the worker cost ~7 us more per request: it starts on the eighth
    waiting request, or at once when a scrape (finish) waits for the sums."""
    wires = [r.SerializeToString() for r in generate_trace_requests(9, 10, seed=11)]
    accumulator = _accumulator()
    for i, wire in enumerate(wires[:3]):
        assert accumulator.submit(i, (wire,), "", True, False) == []
    time.sleep(0.05)
    assert accumulator.submit(3, (wires[3],), "", True, False) == []  # none walked meanwhile
    assert [token for token, _ in accumulator.finish()] == [0, 1, 2, 3]
    results: list[tuple[int, Any]] = []
    for i, wire in enumerate(wires[:8]):
        results += accumulator.submit(i, (wire,), "", True, False)
    next_token = 8
    deadline = time.monotonic() + 10
    while len(results) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)  # a later submit collects what the worker walked meanwhile
        results += accumulator.submit(next_token, (wires[8],), "", True, False)
        next_token += 1
    assert [token for token, _ in results[:8]] == list(range(8))  # walked without a finish
    accumulator.finish()
