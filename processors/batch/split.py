"""Splitting an OTLP request into two at item granularity (span, data point, log record).

Each half keeps the resource and scope (and, for metrics, the metric's name, unit,
type and temporality) of the items it holds, so both are complete requests. Item
messages are copied by protobuf's C implementation (``extend``/``append``); nothing
is converted to Python values.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_receiver.component import Batch

# The child list at each level, from the request down to the items' container.
_TRACE_LEVELS = ("resource_spans", "scope_spans", "spans")
_LOG_LEVELS = ("resource_logs", "scope_logs", "log_records")
# Metrics have one more level: a Metric's data points live in its `data` oneof.
_METRIC_LEVELS = ("resource_metrics", "scope_metrics", "metrics", "data_points")


def _levels(batch: Batch) -> tuple[str, ...]:
    if isinstance(batch, ExportTraceServiceRequest):
        return _TRACE_LEVELS
    if isinstance(batch, ExportMetricsServiceRequest):
        return _METRIC_LEVELS
    return _LOG_LEVELS


def _children(message: Any, field: str) -> Any:
    if field == "data_points":
        kind = message.WhichOneof("data")
        return getattr(message, kind).data_points if kind is not None else ()
    return getattr(message, field)


def _copy_except(source: Message, skip: str) -> Message:
    copy = type(source)()
    for field, value in source.ListFields():
        if field.name == skip:
            continue
        if field.is_repeated:
            getattr(copy, field.name).extend(value)
        elif field.message_type is not None:
            getattr(copy, field.name).CopyFrom(value)
        else:
            setattr(copy, field.name, value)
    return copy


def _shell(message: Message, field: str) -> Message:
    """``message`` without its children in ``field``."""
    if field != "data_points":
        return _copy_except(message, field)
    kind = message.WhichOneof("data")  # a Metric
    if kind is None:
        return _copy_except(message, "")
    shell = _copy_except(message, kind)
    data = getattr(shell, kind)
    data.SetInParent()
    data.MergeFrom(_copy_except(getattr(message, kind), "data_points"))
    return shell


def _count(message: Any, levels: tuple[str, ...], depth: int) -> int:
    children = _children(message, levels[depth])
    if depth == len(levels) - 1:
        return len(children)
    return sum(_count(child, levels, depth + 1) for child in children)


def _split(message: Any, levels: tuple[str, ...], depth: int, budget: int) -> tuple[Any, Any]:
    field = levels[depth]
    head, tail = _shell(message, field), _shell(message, field)
    source = _children(message, field)
    head_children, tail_children = _children(head, field), _children(tail, field)
    if depth == len(levels) - 1:
        head_children.extend(source[:budget])
        tail_children.extend(source[budget:])
        return head, tail
    taken = 0
    for child in source:
        if budget == 0:
            break
        taken += 1
        n = _count(child, levels, depth + 1)
        if n <= budget:
            head_children.append(child)
            budget -= n
        else:
            child_head, child_tail = _split(child, levels, depth + 1, budget)
            head_children.append(child_head)
            tail_children.append(child_tail)
            budget = 0
    tail_children.extend(source[taken:])
    return head, tail


def split(batch: Batch, items: int) -> tuple[Batch, Batch]:
    """The first ``items`` spans / data points / log records of ``batch``, and the rest.

    ``0 < items < count_items(batch)``. The input is left unchanged.
    """
    if items <= 0:
        raise ValueError("items must be positive")
    head, tail = _split(batch, _levels(batch), 0, items)
    return head, tail
