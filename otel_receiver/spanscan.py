"""The attributes a component wants from each span, without a protobuf object per attribute.

``span_rows``, ``table`` and ``positions`` read the serialized request in C
(``_spanscan.c``): reading attributes through protobuf's Python objects costs ~0.5 µs
per attribute touched, the C scan ~0.1 µs per span. The bytes are the request as
received when the caller has them (``RequestContext.wire``), else one serialization
(upb, ~2-3 µs per 1.5 kB span). Without the extension (an install without a C
compiler) the same results come from the protobuf objects, which is also the reference
the tests compare the C scan with.
"""

from __future__ import annotations

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
