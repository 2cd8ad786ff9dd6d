"""``spanscan.locate`` in C against ``spanscan.python_locate``, the reference it replaces
in pii_redaction: same places, same fields, same refusals, on generated requests, the
benchmark workload, clients' encodings and random bytes. ``locate_fields`` (the same answer
in the shape pii_redaction walks) against ``locate``'s."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.workload import generate_trace_requests
from otel_receiver import spanscan
from otel_receiver.spanscan import NotCanonical, python_locate
from tests.protobuf_wire import field
from tests.test_spanscan import requests

pytestmark = pytest.mark.skipif(not spanscan.available(), reason="the C extension is not built")


def _outcome(fn, wire: bytes, matches: list[tuple[int, int]]) -> object:  # type: ignore[no-untyped-def]
    try:
        return fn(wire, matches)
    except NotCanonical:
        return "not canonical"
    except (ValueError, IndexError):
        return "malformed"


def _by_number(found: object) -> object:
    """``locate``'s answer as ``locate_fields`` gives it."""
    if not isinstance(found, dict):
        return found
    out = []
    for place, fields in sorted(found.items()):
        by_number: dict[int, list[int]] = {}
        for number, index in sorted(fields, key=lambda pair: (pair[0], -pair[1])):
            by_number.setdefault(number, []).append(index)
        out.append((place, by_number))
    return out


def _same(wire: bytes, matches: list[tuple[int, int]]) -> None:
    reference = _outcome(python_locate, wire, matches)
    assert _outcome(spanscan.locate, wire, matches) == reference
    assert _outcome(spanscan.locate_fields, wire, matches) == _by_number(reference)


def _ranges(size: int) -> st.SearchStrategy[list[tuple[int, int]]]:
    bound = max(size, 1)
    return st.lists(
        st.tuples(st.integers(0, bound), st.integers(0, 40)).map(lambda t: (t[0], t[0] + t[1])), max_size=12
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.data())
def test_c_locates_what_the_python_reference_locates(
    req: ExportTraceServiceRequest, data: st.DataObject
) -> None:
    wire = req.SerializeToString()
    _same(wire, data.draw(_ranges(len(wire))))


def test_the_workload_with_its_real_matches() -> None:
    for req in generate_trace_requests(5, 100, seed=3):
        wire = req.SerializeToString()
        every_digit = [(i, i + 1) for i, b in enumerate(wire) if 0x30 <= b <= 0x39]
        found = spanscan.locate(wire, every_digit)
        assert found == python_locate(wire, every_digit)
        assert len(found) > 50
        assert spanscan.locate_fields(wire, every_digit) == _by_number(found)


def test_overlap_not_containment_and_the_empty_cases() -> None:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(3):
        span = ss.spans.add()
        span.attributes.add(key="a").value.string_value = f"first-{i}"
        span.attributes.add(key="b").value.string_value = f"second-{i}"
    wire = req.SerializeToString()
    end_of_span0 = wire.index(b"second-0") + len(b"second-0")
    start_of_span1 = wire.index(b"first-1")
    found = spanscan.locate(wire, [(end_of_span0 - 2, start_of_span1 + 2)])
    assert found == {(0, 0, 0): {(9, 1)}, (0, 0, 1): {(9, 0)}}
    assert spanscan.locate(wire, []) == {}
    assert spanscan.locate(b"", [(0, 5)]) == {}
    # Unsorted and overlapping matches are merged first.
    at = wire.index(b"second-2")
    assert spanscan.locate(wire, [(at + 3, at + 4), (at, at + 5)]) == {(0, 0, 2): {(9, 1)}}


def test_a_split_resource_or_scope_is_not_canonical() -> None:
    req = generate_trace_requests(1, 3, seed=1)[0]
    rs = req.resource_spans[0]
    resource = rs.resource.SerializeToString()
    split = field(1, field(1, resource) + rs.SerializeToString())
    everything = [(0, len(split))]
    with pytest.raises(NotCanonical):
        spanscan.locate(split, everything)
    _same(split, everything)
    # A split resource nobody looks into is fine: only the ranges' places are read.
    other = field(1, rs.SerializeToString()) + split
    assert spanscan.locate(other, [(5, 6)]) == python_locate(other, [(5, 6)])
    scope = rs.scope_spans[0]
    split_scope = field(1, field(2, field(1, scope.scope.SerializeToString()) + scope.SerializeToString()))
    with pytest.raises(NotCanonical):
        spanscan.locate(split_scope, [(0, len(split_scope))])


def test_unknown_and_high_field_numbers_are_counted_like_the_reference() -> None:
    field_1000 = b"\xc2\x3e"  # the tag of field 1000, length-delimited: two varint bytes
    span = field(9, b"\x0a\x01k") + field(9, b"\x0a\x01j") + field_1000 + b"\x01x" + field_1000 + b"\x01y"
    wire = field(1, field(2, field(2, span)))
    found = spanscan.locate(wire, [(0, len(wire))])
    assert found[(0, 0, 0)] == {(9, 0), (9, 1), (1000, 0), (1000, 1)}
    assert spanscan.locate_fields(wire, [(0, len(wire))])[-1] == ((0, 0, 0), {9: [1, 0], 1000: [1, 0]})
    _same(wire, [(0, len(wire))])


def test_located_fields_come_sorted_by_place_when_a_resource_follows_its_scopes() -> None:
    """A client may write a ResourceSpans' resource after its scope_spans."""
    req = generate_trace_requests(1, 2, seed=1)[0]
    rs = req.resource_spans[0]
    resource_last = b"".join(field(2, scope.SerializeToString()) for scope in rs.scope_spans)
    resource_last += field(1, rs.resource.SerializeToString())
    wire = field(1, resource_last)
    places = [place for place, _ in spanscan.locate_fields(wire, [(0, len(wire))])]
    assert places == sorted(places) and places[0] == (0, -1, -1)
    _same(wire, [(0, len(wire))])


def test_logs_share_the_layout() -> None:
    logs = ExportLogsServiceRequest()
    record = logs.resource_logs.add().scope_logs.add().log_records.add()
    record.body.string_value = "mail me at someone@example.org"
    wire = logs.SerializeToString()
    at = wire.index(b"@")
    assert spanscan.locate(wire, [(at, at + 1)]) == {(0, 0, 0): {(5, 0)}}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.data())
def test_random_bytes_locate_or_refuse(data: bytes, draw: st.DataObject) -> None:
    matches = draw.draw(_ranges(len(data)))
    with contextlib.suppress(ValueError):  # the C scan refuses malformed bytes with ValueError only
        spanscan.locate(data, matches)
    with contextlib.suppress(ValueError):
        spanscan.locate_fields(data, matches)


def test_bad_matches_are_refused() -> None:
    with pytest.raises(TypeError):
        spanscan.locate(b"", [(0,)])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        spanscan.locate(b"", [(5, 2)])
    with pytest.raises(ValueError):
        spanscan.locate(b"", [(-1, 2)])
    with pytest.raises(ValueError):
        spanscan.locate_fields(b"", [(5, 2)])


def test_locate_fields_without_the_extension_gives_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    wire = generate_trace_requests(1, 20, seed=2)[0].SerializeToString()
    every_digit = [(i, i + 1) for i, b in enumerate(wire) if 0x30 <= b <= 0x39]
    in_c = spanscan.locate_fields(wire, every_digit)
    monkeypatch.setattr(spanscan, "_spanscan", None)
    assert spanscan.locate_fields(wire, every_digit) == in_c
