"""The C span scan (``otel_receiver/_spanscan.c``) against the protobuf objects: the same
rows for every span shape, no crash on any input, and the same span-derived metrics."""

from __future__ import annotations

import contextlib
import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from bench.workload import generate_trace_requests
from exporters.prometheus import spanmetrics
from otel_receiver import _spanscan, spanscan
from otel_receiver.component import RequestContext
from tests.protobuf_wire import client_encoding, field

KEYS = ("gen_ai.operation.name", "gen_ai.usage.input_tokens", "service.name", "k", "k2", "anomaly.kinds")


def test_the_scan_is_built() -> None:
    """The extension is optional at install time; here it must have been built, or the
    suite would test only the fallback without saying so."""
    assert spanscan.available()


def _same(a: object, b: object) -> bool:
    """Equality that treats NaN as equal to itself and tells 1 from True and 1.0."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)  # type: ignore[attr-defined,index]
    return a == b


def _assert_rows_match(
    req: ExportTraceServiceRequest, keys: tuple[str, ...] = KEYS
) -> list[spanscan.SpanRow]:
    by_c = _spanscan.spans(req.SerializeToString(), keys)
    by_objects = spanscan.python_rows(req, keys)
    assert _same(by_c, by_objects), (by_c, by_objects)
    return by_c


def _value(draw: st.DrawFn, depth: int = 0) -> AnyValue:
    v = AnyValue()
    kind = draw(
        st.sampled_from(["s", "b", "i", "d", "y", "a", "m", "none"] if depth < 3 else ["s", "i", "none"])
    )
    if kind == "s":
        v.string_value = draw(st.text(max_size=8))
    elif kind == "b":
        v.bool_value = draw(st.booleans())
    elif kind == "i":
        v.int_value = draw(st.integers(-(2**63), 2**63 - 1))
    elif kind == "d":
        v.double_value = draw(st.floats(allow_nan=True, allow_infinity=True))
    elif kind == "y":
        v.bytes_value = draw(st.binary(max_size=6))
    elif kind == "a":
        for _ in range(draw(st.integers(0, 3))):
            v.array_value.values.add().CopyFrom(_value(draw, depth + 1))
    elif kind == "m":
        for _ in range(draw(st.integers(0, 3))):
            kv = v.kvlist_value.values.add(key=draw(st.sampled_from(["x", "y", "z"])))
            kv.value.CopyFrom(_value(draw, depth + 1))
    return v


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        rs = req.resource_spans.add()
        for _ in range(draw(st.integers(0, 2))):  # none, one or two service.name, any type
            rs.resource.attributes.add(key="service.name").value.CopyFrom(_value(draw, 2))
        for _ in range(draw(st.integers(0, 2))):
            ss = rs.scope_spans.add()
            for _ in range(draw(st.integers(0, 3))):
                span = ss.spans.add(name=draw(st.text(max_size=4)))
                span.kind = draw(st.integers(-3, 8))  # out-of-range enums stay ints
                span.status.code = draw(st.integers(-1, 4))
                span.start_time_unix_nano = draw(st.integers(0, 2**64 - 1))
                span.end_time_unix_nano = draw(st.integers(0, 2**64 - 1))
                span.trace_id = draw(st.binary(max_size=16))
                span.span_id = draw(st.binary(max_size=8))
                for _ in range(draw(st.integers(0, 5))):  # duplicates: the last one wins
                    kv = span.attributes.add(key=draw(st.sampled_from([*KEYS, "other", "pre.x"])))
                    if draw(st.booleans()):
                        kv.value.CopyFrom(_value(draw))
                for _ in range(draw(st.integers(0, 2))):
                    event = span.events.add(name="e")
                    for _ in range(draw(st.integers(0, 2))):
                        key = draw(st.sampled_from(["k", "other", "pre.y", "pre"]))
                        event.attributes.add(key=key).value.string_value = "v"
        if draw(st.booleans()):
            rs.resource.attributes.add(key="k").value.CopyFrom(_value(draw))
    return req


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_the_scan_reads_what_the_objects_hold(req: ExportTraceServiceRequest) -> None:
    _assert_rows_match(req)


RESOURCE_KEYS = ("service.name", "k", "absent")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_the_table_holds_what_the_objects_hold(req: ExportTraceServiceRequest) -> None:
    by_c = _spanscan.table(req.SerializeToString(), KEYS, RESOURCE_KEYS)
    assert _same(by_c, spanscan.python_table(req, KEYS, RESOURCE_KEYS)), by_c
    assert len(by_c) == sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    for ri, si, i, _, name, *_ in by_c:  # the positions address the spans
        assert req.resource_spans[ri].scope_spans[si].spans[i].name == name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_positions_are_the_spans_with_a_wanted_key(req: ExportTraceServiceRequest) -> None:
    for keys, prefixes in ((("k",), ("pre.",)), (("k2", "other"), ()), ((), ("pre",)), ((), ())):
        by_c = _spanscan.positions(req.SerializeToString(), keys, prefixes)
        assert by_c == spanscan.python_positions(req, keys, prefixes), (keys, prefixes)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), requests())
def test_the_scans_read_merged_messages_as_protobuf_does(
    first: ExportTraceServiceRequest, second: ExportTraceServiceRequest
) -> None:
    """A client's bytes need not be what protobuf would write: two encodings of one
    message in a row are their merge (repeated fields concatenated, the singular
    ``resource`` merged, a later status code replacing an earlier one). The scans read
    received bytes (``RequestContext.wire``), so they must read merges as the objects do."""
    pairs = list(zip(first.resource_spans, second.resource_spans, strict=False))
    wire = b"".join(field(1, a.SerializeToString() + b.SerializeToString()) for a, b in pairs)
    for a, b in pairs:  # and spans that are merges of two spans
        for ss_a, ss_b in zip(a.scope_spans, b.scope_spans, strict=False):
            spans = b"".join(field(2, x.SerializeToString() + y.SerializeToString())
                             for x, y in zip(ss_a.spans, ss_b.spans, strict=False))  # fmt: skip
            wire += field(1, field(2, spans))
    req = ExportTraceServiceRequest.FromString(wire)
    assert _same(_spanscan.spans(wire, KEYS), spanscan.python_rows(req, KEYS))
    assert _same(_spanscan.table(wire, KEYS, RESOURCE_KEYS), spanscan.python_table(req, KEYS, RESOURCE_KEYS))
    assert _spanscan.positions(wire, ("k",), ("pre",)) == spanscan.python_positions(req, ("k",), ("pre",))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.integers(0, 2**32))
def test_a_clients_encoding_scans_as_the_objects_or_falls_back(
    req: ExportTraceServiceRequest, seed: int
) -> None:
    """Fields in any order, padded lengths, singular messages split in two: what the C
    scan reads as the parser does it returns; an attribute value or an array split in two
    (which the parser merges) it refuses, and the wrappers read the objects instead."""
    wire = client_encoding(req.SerializeToString(), "ExportTraceServiceRequest", random.Random(seed), 0.3)
    parsed = ExportTraceServiceRequest.FromString(wire)
    assert parsed == req
    assert _same(spanscan.span_rows(parsed, KEYS, wire), spanscan.python_rows(req, KEYS))
    assert _same(
        spanscan.table(parsed, KEYS, RESOURCE_KEYS, wire), spanscan.python_table(req, KEYS, RESOURCE_KEYS)
    )
    with contextlib.suppress(ValueError):
        assert _same(
            _spanscan.table(wire, KEYS, RESOURCE_KEYS), spanscan.python_table(req, KEYS, RESOURCE_KEYS)
        )


def test_the_workload_scans_the_same() -> None:
    for req in generate_trace_requests(5, 100, seed=3, pii_fraction=0.5):
        rows = _assert_rows_match(req, spanmetrics._SPAN_KEYS)
        assert len(rows) > 50


def test_names_whose_lengths_differ_by_64_are_told_apart() -> None:
    """The scan rules attributes out by their name's length modulo 64 before comparing
    names: names of 1, 65 and 129 bytes share that test and must still be told apart."""
    keys = ("k", "x" * 64 + "k", "y" * 70)
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add(name="s")
    for key, value in [("z" * 64 + "k", 1), ("x" * 64 + "k", 2), ("k" * 129, 3), ("y" * 70, 4), ("k", 5)]:
        span.attributes.add(key=key).value.int_value = value
    [row] = _assert_rows_match(req, keys)
    assert row[-1] == (5, 2, 4)


def _every_scan_raises_or_scans(data: bytes) -> None:
    for scan in (
        lambda: _spanscan.spans(data, KEYS),
        lambda: _spanscan.table(data, KEYS, RESOURCE_KEYS),
        lambda: _spanscan.positions(data, KEYS, ("pre",)),
    ):
        with contextlib.suppress(ValueError):
            scan()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_raise_or_scan(data: bytes) -> None:
    _every_scan_raises_or_scans(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_damaged_requests_raise_or_scan(data: st.DataObject) -> None:
    body = bytearray(generate_trace_requests(1, 5, seed=data.draw(st.integers(0, 50)))[0].SerializeToString())
    for _ in range(data.draw(st.integers(1, 4))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    _every_scan_raises_or_scans(bytes(body[: data.draw(st.integers(0, len(body)))]))


def test_wrong_arguments_are_type_errors() -> None:
    with pytest.raises(TypeError):
        _spanscan.spans("not bytes", KEYS)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _spanscan.spans(b"", ["a list"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _spanscan.spans(b"", (1,))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        _spanscan.spans(b"", tuple(str(i) for i in range(129)))
    with pytest.raises(ValueError):
        _spanscan.table(b"", KEYS, tuple(str(i) for i in range(129)))
    with pytest.raises(TypeError):
        _spanscan.positions(b"", KEYS, (b"bytes",))  # type: ignore[arg-type]


def test_values_deeper_than_the_scan_follows_are_read_from_the_objects() -> None:
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add()
    value = span.attributes.add(key="k").value
    for _ in range(120):  # deeper than protobuf would parse, but a message can be built so
        value = value.array_value.values.add()
    value.string_value = "deep"
    with pytest.raises(ValueError, match="deeper"):
        _spanscan.spans(req.SerializeToString(), ("k",))
    rows = spanscan.span_rows(req, ("k",))
    assert rows == spanscan.python_rows(req, ("k",))
    assert spanscan.table(req, ("k",)) == spanscan.python_table(req, ("k",), ())


def test_span_metrics_are_the_same_from_the_scan_and_from_the_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The exporter's aggregation over the C scan and over the fallback path agree on
    every family, exemplar spans included."""
    batches = generate_trace_requests(8, 100, seed=12, pii_fraction=0.3)
    rng = random.Random(4)
    for req in batches:  # anomaly kinds, redactions and costs, which the workload lacks
        for span in rng.sample(list(req.resource_spans[0].scope_spans[0].spans), 5):
            kinds = span.attributes.add(key="anomaly.kinds").value.array_value.values
            kinds.add().string_value = "latency"
            kinds.add().string_value = "cost"
            span.attributes.add(
                key="pii.redacted.types"
            ).value.array_value.values.add().string_value = "EMAIL"
            span.attributes.add(key="pii.redacted.count").value.int_value = 3
            span.attributes.add(key="gen_ai.usage.cost").value.double_value = rng.choice(
                [0.0123, 0.0, 2.5e-7]
            )
    ctx = RequestContext(tenant="acme")
    by_c = [spanmetrics.aggregate_spans(b, ctx, "auto") for b in batches]
    monkeypatch.setattr(spanscan, "_spanscan", None)
    by_objects = [spanmetrics.aggregate_spans(b, ctx, "auto") for b in batches]
    assert by_c == by_objects
    assert any(a.anomalies and a.pii and a.cost and a.tokens and a.duration for a in by_c)
