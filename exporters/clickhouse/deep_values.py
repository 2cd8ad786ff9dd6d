"""Values nested deeper than the SQL decodes, rendered in Python before the insert.

ClickHouse reads a request through a fixed-depth protobuf schema (``wire.py``): each
decoded level doubles the type ClickHouse analyses on every insert (span attributes
at two levels cost 82 ms per insert instead of 45), so the levels stay few. An array
or map nested deeper makes the views fail the insert with ``DEEPER_THAN_DECODED``
before any row is written (``columns.py``). The exporter then calls
``render_too_deep``: every attribute value or log body deeper than its decoded level
is replaced, in a copy of the request, by the text the Collector's exporter stores for
it (``pcommon.Value.AsString``: JSON, map keys sorted, HTML characters escaped as Go
does), and the insert is made again. Stored rows are the same as if SQL had decoded
the value; the Python walk is paid only by batches holding such values.

Written by hand because no library renders an OTLP ``AnyValue`` the way the Collector
does; ``tests/test_clickhouse_deep_values.py`` checks it against our SQL rendering.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from otel_receiver.component import Batch

from . import wire

_CONTAINERS = ("array_value", "kvlist_value")
# Go's encoding/json escapes these although JSON does not require it.
_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def ecmascript_float(f: float) -> str:
    """A finite float64 the way Go's encoding/json (ECMAScript rules) writes it:
    ``2``, ``0.7``, ``0.000001``, ``1e-7``, ``1e+21``."""
    if f == 0.0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(f)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    assert isinstance(exponent, int)
    exponent += len(digit_tuple) - len(digits)
    k = len(digits)
    n = exponent + k  # the value is 0.<digits> x 10^n
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        text = digits[0] + ("." + digits[1:] if k > 1 else "") + ("e+" if e > 0 else "e-") + str(abs(e))
    return ("-" if sign else "") + text


# ClickHouse's toJSONString escapes, which the SQL path stores: other control characters
# as \u00XX in uppercase hex (Go writes lowercase; such characters inside structured
# values are rare, and both paths of ours store the same text).
_JSON_STRING_ESCAPES = {c: f"\\u{c:04X}" for c in range(0x20)} | {
    ord('"'): '\\"',
    ord("\\"): "\\\\",
    ord("\b"): "\\b",
    ord("\f"): "\\f",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}


def _json_string(s: str) -> str:
    return '"' + s.translate(_JSON_STRING_ESCAPES) + '"'


def _json(v: AnyValue) -> str:
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return _json_string(v.string_value)
    if kind == "int_value":
        return str(v.int_value)
    if kind == "double_value":
        d = v.double_value
        return ecmascript_float(d) if math.isfinite(d) else "null"
    if kind == "bool_value":
        return "true" if v.bool_value else "false"
    if kind == "bytes_value":
        return '"' + base64.b64encode(v.bytes_value).decode("ascii") + '"'
    if kind == "array_value":
        return "[" + ",".join(_json(x) for x in v.array_value.values) + "]"
    if kind == "kvlist_value":
        # Sorted by key as Go marshals a map; sorted() is stable, like the SQL's arraySort.
        pairs = sorted(v.kvlist_value.values, key=lambda kv: kv.key)
        return "{" + ",".join(_json_string(kv.key) + ":" + _json(kv.value) for kv in pairs) + "}"
    return "null"


def container_text(v: AnyValue) -> str:
    """The stored text of an array or map value: its JSON with Go's escapes."""
    return _json(v).translate(_GO_ESCAPES)


def depth(v: AnyValue) -> int:
    """Container levels in ``v``: 0 for a scalar, 1 for an array of scalars, ..."""
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return 1 + max((depth(x) for x in v.array_value.values), default=0)
    if kind == "kvlist_value":
        return 1 + max((depth(kv.value) for kv in v.kvlist_value.values), default=0)
    return 0


def _too_deep(v: AnyValue, level: int) -> bool:
    return v.WhichOneof("value") in _CONTAINERS and depth(v) > level


def _render(v: AnyValue) -> None:
    text = container_text(v)
    v.Clear()
    v.string_value = text


def _attribute_lists(batch: Batch) -> list[tuple[Any, int]]:
    """Every attribute list of a request with the level its values are decoded to."""
    level = wire.ATTRIBUTE_LEVEL
    out: list[tuple[Any, int]] = []
    if isinstance(batch, ExportTraceServiceRequest):
        for rs in batch.resource_spans:
            out.append((rs.resource.attributes, level))
            for ss in rs.scope_spans:
                out.append((ss.scope.attributes, level))
                for span in ss.spans:
                    out.append((span.attributes, level))
                    out.extend((event.attributes, level) for event in span.events)
                    out.extend((link.attributes, level) for link in span.links)
    elif isinstance(batch, ExportLogsServiceRequest):
        for rl in batch.resource_logs:
            out.append((rl.resource.attributes, level))
            for sl in rl.scope_logs:
                out.append((sl.scope.attributes, level))
                out.extend((record.attributes, wire.LOG_ATTRIBUTE_LEVEL) for record in sl.log_records)
    else:
        for rm in batch.resource_metrics:
            out.append((rm.resource.attributes, level))
            for sm in rm.scope_metrics:
                out.append((sm.scope.attributes, level))
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    if kind is None:
                        continue
                    for point in getattr(metric, kind).data_points:
                        out.append((point.attributes, level))
                        out.extend((ex.filtered_attributes, level) for ex in getattr(point, "exemplars", ()))
    return out


def _log_bodies(batch: Batch) -> list[AnyValue]:
    if not isinstance(batch, ExportLogsServiceRequest):
        return []
    return [record.body for rl in batch.resource_logs for sl in rl.scope_logs for record in sl.log_records]


def _too_deep_values(batch: Batch) -> list[AnyValue]:
    """The attribute values and log bodies of ``batch`` nested deeper than SQL decodes them."""
    found = [
        kv.value
        for attributes, level in _attribute_lists(batch)
        for kv in attributes
        if _too_deep(kv.value, level)
    ]
    found += [body for body in _log_bodies(batch) if _too_deep(body, wire.LOG_BODY_LEVEL)]
    return found


def render_too_deep(parts: Sequence[Batch]) -> tuple[list[Batch], int] | None:
    """``parts`` with every value nested deeper than its decoded level replaced by its
    stored text, and how many values were replaced; None when there is none. Parts
    holding such values are copied: the caller's requests may be shared with other
    exporters and must stay as they are."""
    out: list[Batch] = []
    rendered = 0
    for part in parts:
        if _too_deep_values(part):
            copy = type(part)()
            copy.CopyFrom(part)
            for value in _too_deep_values(copy):
                _render(value)
                rendered += 1
            out.append(copy)
        else:
            out.append(part)
    return (out, rendered) if rendered else None
