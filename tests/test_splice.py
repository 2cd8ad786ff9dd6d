"""``spanscan.splice``: the serialized request with a few messages replaced or extended
must parse into exactly the request with the same change made through the objects.
A wrong splice would hand later processors and exporters bytes that are not the batch:
data lost, or a redacted value stored after all."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from bench.workload import generate_trace_requests
from otel_receiver import spanscan
from otel_receiver.component import RequestContext
from otel_receiver.spanscan import Edit
from tests.protobuf_wire import field
from tests.test_spanscan import requests


def _places(req: ExportTraceServiceRequest) -> list[tuple[int, int, int]]:
    out = []
    for ri, rs in enumerate(req.resource_spans):
        if rs.HasField("resource"):
            out.append((ri, -1, -1))
        for si, ss in enumerate(rs.scope_spans):
            if ss.HasField("scope"):
                out.append((ri, si, -1))
            out += [(ri, si, i) for i in range(len(ss.spans))]
    return out


def _target(req: ExportTraceServiceRequest, place: tuple[int, int, int]):  # type: ignore[no-untyped-def]
    ri, si, i = place
    rs = req.resource_spans[ri]
    if si < 0:
        return rs.resource
    if i < 0:
        return rs.scope_spans[si].scope
    return rs.scope_spans[si].spans[i]


def _attribute(key: str, value: str) -> bytes:
    kv = KeyValue(key=key)
    kv.value.string_value = value
    return kv.SerializeToString()


def _apply(req: ExportTraceServiceRequest, edits: list[Edit]) -> ExportTraceServiceRequest:
    expected = ExportTraceServiceRequest()
    expected.CopyFrom(req)
    for ri, si, i, payload, append in edits:
        target = _target(expected, (ri, si, i))
        if not append:
            target.Clear()
        target.MergeFromString(payload)
    return expected


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.data())
def test_a_splice_is_the_change_made_through_the_objects(
    req: ExportTraceServiceRequest, data: st.DataObject
) -> None:
    places = _places(req)
    chosen = sorted(data.draw(st.sets(st.sampled_from(places), max_size=len(places))) if places else [])
    edits: list[Edit] = []
    for place in chosen:
        target = _target(req, place)
        attribute = (9, 3, 1)[[place[2] >= 0, place[1] >= 0 and place[2] < 0, place[1] < 0].index(True)]
        size = data.draw(st.sampled_from([0, 3, 200, 20000]))  # length prefixes of 1, 2 and 3 bytes
        if data.draw(st.booleans()):
            payload = field(attribute, _attribute("added", "x" * size))
            edits.append((*place, payload, True))
        else:
            copy = type(target)()
            copy.CopyFrom(target)
            copy.attributes.add(key="replaced").value.string_value = "y" * size
            if data.draw(st.booleans()):
                del copy.attributes[:]  # a redaction that shrinks the message
            edits.append((*place, copy.SerializeToString(), False))
    wire = req.SerializeToString()
    spliced = spanscan.splice(wire, edits)
    assert spliced is not None
    assert ExportTraceServiceRequest.FromString(spliced) == _apply(req, edits)
    if not edits:
        assert spliced == wire


def test_the_workload_spliced_is_the_workload_changed() -> None:
    for req in generate_trace_requests(4, 100, seed=12, pii_fraction=0.3):
        places = [p for p in _places(req) if p[2] >= 0][::7]
        edits: list[Edit] = [(*p, field(9, _attribute("gen_ai.usage.cost", "1")), True) for p in places]
        spliced = spanscan.splice(req.SerializeToString(), edits)
        assert spliced is not None and ExportTraceServiceRequest.FromString(spliced) == _apply(req, edits)


def test_logs_and_metrics_share_the_layout() -> None:
    logs = ExportLogsServiceRequest()
    rl = logs.resource_logs.add()
    rl.resource.attributes.add(key="service.name").value.string_value = "svc"
    for n in range(3):
        rl.scope_logs.add().log_records.add().body.string_value = f"mail {n}@example.com"
    redacted = type(rl.scope_logs[1].log_records[0])()
    redacted.body.string_value = "[REDACTED:EMAIL]"
    spliced = spanscan.splice(logs.SerializeToString(), [(0, 1, 0, redacted.SerializeToString(), False)])
    assert spliced is not None
    expected = ExportLogsServiceRequest()
    expected.CopyFrom(logs)
    expected.resource_logs[0].scope_logs[1].log_records[0].CopyFrom(redacted)
    assert ExportLogsServiceRequest.FromString(spliced) == expected

    metrics = ExportMetricsServiceRequest()
    metrics.resource_metrics.add().scope_metrics.add().metrics.add(
        name="m"
    ).gauge.data_points.add().as_int = 1
    spliced = spanscan.splice(metrics.SerializeToString(), [(0, 0, 0, field(1, b"renamed"), True)])
    assert spliced is not None
    assert ExportMetricsServiceRequest.FromString(spliced).resource_metrics[0].scope_metrics[0].metrics[
        0
    ].name == ("renamed")


def test_a_clients_padded_length_prefixes_are_rewritten() -> None:
    """Protobuf parsers accept a varint with redundant continuation bytes; a client may
    send one. The splice rewrites the whole prefix, whatever its width."""
    span = ExportTraceServiceRequest().resource_spans.add().scope_spans.add().spans.add(name="s")
    body = span.SerializeToString()

    def padded(number: int, payload: bytes) -> bytes:
        n = len(payload)
        return bytes([number << 3 | 2, (n & 0x7F) | 0x80, (n >> 7) | 0x80, 0x00]) + payload

    wire = padded(1, padded(2, padded(2, body)))
    edits: list[Edit] = [(0, 0, 0, field(1, b"renamed"), True)]
    spliced = spanscan.splice(wire, edits)
    assert spliced is not None
    req = ExportTraceServiceRequest.FromString(wire)
    assert ExportTraceServiceRequest.FromString(spliced) == _apply(req, edits)


def test_what_cannot_be_spliced_is_refused() -> None:
    req = generate_trace_requests(1, 3, seed=1)[0]
    wire = req.SerializeToString()
    payload = field(9, _attribute("k", "v"))
    assert spanscan.splice(wire, [(0, 0, 3, payload, True)]) is None  # no such span
    assert spanscan.splice(wire, [(1, 0, 0, payload, True)]) is None  # no such resource
    assert spanscan.splice(wire, [(0, 0, 1, payload, True), (0, 0, 0, payload, True)]) is None  # unsorted
    assert spanscan.splice(wire, [(0, 0, 0, payload, True), (0, 0, 0, payload, True)]) is None  # twice
    assert spanscan.splice(wire[:-3], [(0, 0, 0, payload, True)]) is None  # damaged
    # A resource split over two fields (the parser merges them) cannot be replaced as one.
    rs = req.resource_spans[0]
    split = field(1, field(1, rs.resource.SerializeToString()) + rs.SerializeToString())
    assert spanscan.splice(split, [(0, -1, -1, rs.resource.SerializeToString(), False)]) is None
    # ... but the spans next to it can be edited.
    spliced = spanscan.splice(split, [(0, 0, 1, payload, True)])
    assert spliced is not None
    merged = ExportTraceServiceRequest.FromString(split)
    assert ExportTraceServiceRequest.FromString(spliced) == _apply(merged, [(0, 0, 1, payload, True)])
    # No scope to extend.
    no_scope = ExportTraceServiceRequest()
    no_scope.resource_spans.add().scope_spans.add().spans.add(name="s")
    assert spanscan.splice(no_scope.SerializeToString(), [(0, 0, -1, payload, True)]) is None


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=300), st.lists(st.tuples(st.integers(0, 2), st.integers(-1, 2), st.integers(-1, 3)))
)
def test_random_bytes_splice_or_are_refused(data: bytes, places: list[tuple[int, int, int]]) -> None:
    edits: list[Edit] = [(*p, b"\x4a\x00", bool(n % 2)) for n, p in enumerate(sorted(set(places)))]
    with contextlib.suppress(ValueError):
        spanscan.splice(data, edits)


def test_wrong_edits_are_type_errors() -> None:
    from otel_receiver import _spanscan

    with pytest.raises(TypeError):
        _spanscan.splice(b"", [(0, 0, 0, "text", True)])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        _spanscan.splice(b"", [(0, 0)])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        _spanscan.splice(b"", [(0, 0, 0, bytearray(b"x"), True)])  # type: ignore[list-item]


def test_the_context_splices_its_wire_or_drops_it() -> None:
    req = generate_trace_requests(1, 3, seed=4)[0]
    context = RequestContext()
    context.set_wire(req, req.SerializeToString(), from_client=True)
    payload = field(9, _attribute("k", "v"))
    req.resource_spans[0].scope_spans[0].spans[1].MergeFromString(payload)
    context.splice_wire(req, [(0, 0, 1, payload, True)])
    wire = context.wire_for(req)
    assert wire is not None and ExportTraceServiceRequest.FromString(wire) == req
    assert context.wire_from_client  # still a client's encoding
    context.splice_wire(req, [(0, 0, 9, payload, True)])
    assert context.wire_for(req) is None
