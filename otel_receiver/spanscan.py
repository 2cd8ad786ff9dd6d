"""The attributes a component wants from each span, without a protobuf object per attribute.

``span_rows``, ``table`` and ``positions`` read the serialized request in C
(``_spanscan.c``): reading attributes through protobuf's Python objects costs ~0.5 µs
per attribute touched, the C scan ~0.1 µs per span. The bytes are the request as
received when the caller has them (``RequestContext.wire``), else one serialization
(upb, ~2-3 µs per 1.5 kB span). Without the extension (an install without a C
compiler) the same results come from the protobuf objects, which is also the reference
the tests compare the C scan with.

``locate`` (which messages of a request hold some byte ranges, for the PII prefilter) and
``splice`` (a request patched with changed messages) work on any signal's bytes.
"""

from __future__ import annotations

import bisect
import contextlib
from types import ModuleType
from typing import Any, TypeAlias

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from otel_receiver.attributes import get_str, pick
from semconv.attributes import SERVICE_NAME

_spanscan: ModuleType | None
try:
    from otel_receiver import _spanscan
except ImportError:  # built without a C compiler
    _spanscan = None

# (service, kind, status code, start ns, end ns, trace id, span id, values): ``values``
# holds per wanted key the value of its last occurrence on the span, None when absent.
SpanRow: TypeAlias = tuple[str, int, int, int, int, bytes, bytes, tuple[Any, ...]]
# (resource index, scope index, span index, resource values, name, kind, status code,
# start ns, end ns, values): every span, its place in the request, and per wanted key
# (resource keys, span keys) the value of its last occurrence or None.
TableRow: TypeAlias = tuple[int, int, int, tuple[Any, ...], str, int, int, int, int, tuple[Any, ...]]
Position: TypeAlias = tuple[int, int, int]
# (resource index, scope index, item index, payload, append): see ``splice``.
Edit: TypeAlias = tuple[int, int, int, bytes, bool]


def available() -> bool:
    return _spanscan is not None


def to_python(value: AnyValue) -> Any:
    """An AnyValue as the scan returns it: str, bool, int, float, bytes, list (array),
    dict (kvlist), or ``()`` when nothing is set."""
    kind = value.WhichOneof("value")
    if kind is None:
        return ()
    if kind == "array_value":
        return [to_python(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: to_python(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def python_rows(batch: ExportTraceServiceRequest, keys: tuple[str, ...]) -> list[SpanRow]:
    """``span_rows`` through the protobuf objects."""
    wanted = frozenset(keys)
    rows: list[SpanRow] = []
    for resource_spans in batch.resource_spans:
        service = get_str(resource_spans.resource.attributes, SERVICE_NAME) or ""
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found = pick(span.attributes, wanted)
                if not found:
                    continue
                values = _values(found, keys)
                rows.append(
                    (
                        service,
                        span.kind,
                        span.status.code,
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                        span.trace_id,
                        span.span_id,
                        values,
                    )
                )
    return rows


def _values(found: dict[str, AnyValue], keys: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(None if (v := found.get(k)) is None else to_python(v) for k in keys)


def python_table(
    batch: ExportTraceServiceRequest, keys: tuple[str, ...], resource_keys: tuple[str, ...]
) -> list[TableRow]:
    """``table`` through the protobuf objects."""
    wanted, resource_wanted = frozenset(keys), frozenset(resource_keys)
    rows: list[TableRow] = []
    for ri, resource_spans in enumerate(batch.resource_spans):
        resource = _values(pick(resource_spans.resource.attributes, resource_wanted), resource_keys)
        for si, scope_spans in enumerate(resource_spans.scope_spans):
            for i, span in enumerate(scope_spans.spans):
                rows.append(
                    (
                        ri,
                        si,
                        i,
                        resource,
                        span.name,
                        span.kind,
                        span.status.code,
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                        _values(pick(span.attributes, wanted), keys),
                    )
                )
    return rows


def python_positions(
    batch: ExportTraceServiceRequest, keys: tuple[str, ...], prefixes: tuple[str, ...]
) -> list[Position]:
    """``positions`` through the protobuf objects."""
    wanted = frozenset(keys)

    def has(attributes: Any) -> bool:
        return any(kv.key in wanted or kv.key.startswith(prefixes) for kv in attributes)

    return [
        (ri, si, i)
        for ri, resource_spans in enumerate(batch.resource_spans)
        for si, scope_spans in enumerate(resource_spans.scope_spans)
        for i, span in enumerate(scope_spans.spans)
        if has(span.attributes) or any(has(event.attributes) for event in span.events)
    ]


# Only a value nested deeper than the scan follows makes the C functions raise ValueError
# on a request protobuf parsed (its own limit is near the scan's): the objects can still
# be read then.


def span_rows(
    batch: ExportTraceServiceRequest, keys: tuple[str, ...], wire: bytes | None = None
) -> list[SpanRow]:
    """One row per span holding at least one of ``keys`` (at most 128), in request order.
    ``service`` is the resource's first ``service.name`` when it is a string, else "".
    ``wire``: the serialized ``batch`` when the caller has it."""
    if _spanscan is not None:
        with contextlib.suppress(ValueError):
            rows: list[SpanRow] = _spanscan.spans(wire or batch.SerializeToString(), keys)
            return rows
    return python_rows(batch, keys)


def table(
    batch: ExportTraceServiceRequest,
    keys: tuple[str, ...],
    resource_keys: tuple[str, ...] = (),
    wire: bytes | None = None,
) -> list[TableRow]:
    """A row for every span, in request order: where it is, its resource's values of
    ``resource_keys``, name, kind, status, times and its values of ``keys`` (at most 128
    of each). Rows of one resource share one resource tuple."""
    if _spanscan is not None:
        with contextlib.suppress(ValueError):
            rows: list[TableRow] = _spanscan.table(wire or batch.SerializeToString(), keys, resource_keys)
            return rows
    return python_table(batch, keys, resource_keys)


def positions(
    batch: ExportTraceServiceRequest,
    keys: tuple[str, ...],
    prefixes: tuple[str, ...] = (),
    wire: bytes | None = None,
) -> list[Position]:
    """Where the spans are whose attributes or events' attributes hold one of ``keys``
    or a key starting with one of ``prefixes`` (at most 128 of each), in request order."""
    if _spanscan is not None:
        with contextlib.suppress(ValueError):
            found: list[Position] = _spanscan.positions(wire or batch.SerializeToString(), keys, prefixes)
            return found
    return python_positions(batch, keys, prefixes)


def splice(wire: bytes, edits: list[Edit]) -> bytes | None:
    """``wire`` (a serialized Export*ServiceRequest) with the messages the edits name
    replaced by their payload (``append`` False: the payload is the message's new
    serialization) or extended by it (True: more fields of the message, which the
    parser merges), and the enclosing lengths rewritten; the rest is copied, not
    serialized again. A place is (resource index, -1, -1) for a resource, (resource
    index, scope index, -1) for a scope, else the item's (span, log record, metric).
    ``edits`` must be sorted by place, one per place. None when the bytes cannot be
    spliced: no C extension, a place not in the request, or a resource or scope to
    edit split over several fields (a client's encoding)."""
    if _spanscan is None:
        return None
    try:
        return _spanscan.splice(wire, edits)
    except ValueError:
        return None


def locate(wire: bytes, matches: list[tuple[int, int]]) -> dict[Position, set[tuple[int, int]]]:
    """Which resources, scopes and items of a serialized Export*ServiceRequest (any
    signal) overlap the byte ranges ``[start, end)`` of ``matches``, and in which of
    their length-delimited fields: ``{place: {(field number, occurrence index)}}``, a
    place being (resource index, -1, -1) for a resource, (resource, scope, -1) for a
    scope, else an item's. Raises NotCanonical when a resource or scope to look into
    is split over several fields, ValueError or IndexError when the bytes are
    malformed. In C when built (~30x faster); ``python_locate`` is the reference."""
    if _spanscan is None:
        return python_locate(wire, matches)
    found: dict[Position, set[tuple[int, int]]] | None = _spanscan.locate(wire, matches)
    if found is None:
        raise NotCanonical("a resource or scope in several fields")
    return found


def locate_fields(wire: bytes, matches: list[tuple[int, int]]) -> list[tuple[Position, dict[int, list[int]]]]:
    """``locate``'s answer as pii_redaction walks it: ``[(place, {field number: occurrence
    indexes, highest first})]``, sorted by place (the order ``splice`` wants its edits in).
    Built in C, it saves the processor a sort and a dict per located item."""
    if _spanscan is None:
        return [(place, _by_number(fields)) for place, fields in sorted(python_locate(wire, matches).items())]
    found: list[tuple[Position, dict[int, list[int]]]] | None = _spanscan.locate_fields(wire, matches)
    if found is None:
        raise NotCanonical("a resource or scope in several fields")
    return found


def _by_number(fields: set[tuple[int, int]]) -> dict[int, list[int]]:
    by_number: dict[int, list[int]] = {}
    for number, index in sorted(fields, reverse=True):
        by_number.setdefault(number, []).append(index)
    return by_number


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _len_fields(buf: bytes, start: int, end: int, stop: int | None = None) -> list[tuple[int, int, int]]:
    """``(field number, value start, value end)`` of the length-delimited fields in a range,
    up to the field containing offset ``stop`` when given."""
    out: list[tuple[int, int, int]] = []
    pos = start
    limit = end if stop is None else min(end, stop)
    while pos < limit:
        key = buf[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(buf, pos)
        wire = key & 7
        if wire == 2:
            b = buf[pos]
            if b < 0x80:
                length = b
                pos += 1
            else:
                length, pos = _varint(buf, pos)
            out.append((key >> 3, pos, pos + length))
            pos += length
        elif wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError("unsupported wire type")
    return out


class NotCanonical(ValueError):
    """The bytes are not what protobuf writes: a singular message split over several
    fields, which the parser merges (attribute lists concatenated), so occurrence
    indexes counted in one field would not address the merged list."""


def python_locate(buf: bytes, matches: list[tuple[int, int]]) -> dict[Position, set[tuple[int, int]]]:
    """Which resources, scopes and items of a serialized Export*ServiceRequest overlap the
    anchor matches ``[start, end)``, and in which of their fields. The three signals share
    the layout request{1: resource_x{1: resource, 2: scope_x{1: scope, 2: item}}}.

    Overlap, not containment of a single offset: the scanner reports leftmost matches
    without overlaps, so a value's own anchor match may be hidden behind an earlier match
    that overlaps it. Every anchor match overlaps a reported one, and every detector match
    contains an anchor match, so every field holding a detector match overlaps a report.

    ``buf`` may be the request as a client encoded it (``RequestContext.wire``): below
    the resource and scope level every index counts a repeated field (attributes,
    events, links), whose occurrences the parser concatenates in order, or names a field
    by number; a resource or scope split over several fields raises NotCanonical."""
    starts, ends = _union(matches)
    n = len(starts)
    out: dict[Position, set[tuple[int, int]]] = {}

    def has(s: int, e: int) -> bool:
        i = bisect.bisect_right(ends, s)
        return i < n and starts[i] < e

    def fields_with_hits(s: int, e: int) -> set[tuple[int, int]]:
        i = bisect.bisect_right(ends, s)
        # The item's fields are walked only up to the last match overlapping it.
        last = bisect.bisect_left(starts, e) - 1
        stop = min(e, ends[last]) if last >= 0 else e
        seen: dict[int, int] = {}
        hit: set[tuple[int, int]] = set()
        for fno, fs, fe in _len_fields(buf, s, e, stop):
            idx = seen.get(fno, -1) + 1
            seen[fno] = idx
            while i < n and ends[i] <= fs:
                i += 1
            if i < n and starts[i] < fe:
                hit.add((fno, idx))
        return hit

    ri = -1
    for fno, s, e in _len_fields(buf, 0, len(buf)):
        if fno != 1:
            continue
        ri += 1
        if not has(s, e):
            continue
        si = -1
        resources = 0
        for fno2, s2, e2 in _len_fields(buf, s, e):
            if fno2 == 1:
                resources += 1
                if has(s2, e2):
                    out[(ri, -1, -1)] = fields_with_hits(s2, e2)
            elif fno2 == 2:
                si += 1
                if not has(s2, e2):
                    continue
                k = -1
                scopes = 0
                for fno3, s3, e3 in _len_fields(buf, s2, e2):
                    if fno3 == 1:
                        scopes += 1
                        if has(s3, e3):
                            out[(ri, si, -1)] = fields_with_hits(s3, e3)
                    elif fno3 == 2:
                        k += 1
                        if has(s3, e3):
                            out[(ri, si, k)] = fields_with_hits(s3, e3)
                if scopes > 1:
                    raise NotCanonical("a scope in several fields")
        if resources > 1:
            raise NotCanonical("a resource in several fields")
    return out


def _union(matches: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Starts and ends of the union of the intervals, both sorted."""
    starts: list[int] = []
    ends: list[int] = []
    for s, e in sorted(matches):
        if ends and s <= ends[-1]:
            ends[-1] = max(ends[-1], e)
        else:
            starts.append(s)
            ends.append(e)
    return starts, ends
