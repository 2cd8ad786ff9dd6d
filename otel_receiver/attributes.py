"""Reading and writing OTLP ``KeyValue`` attribute lists in place.

Processors share these so that no one converts a span's attributes to a dict: a
single scan picks the keys a processor wants, and writes replace an existing key
rather than appending a duplicate (OTLP requires keys to be unique).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeAlias

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

Attributes: TypeAlias = RepeatedCompositeFieldContainer[KeyValue]


def any_value_to_python(v: AnyValue) -> Any:
    """Plain Python value of an AnyValue (None when unset). For cold paths only."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value_to_python(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value_to_python(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind)


def scalar(v: AnyValue) -> str | bool | int | float | bytes | None:
    """The scalar inside an AnyValue, or None for unset, arrays and maps."""
    kind = v.WhichOneof("value")
    if kind is None or kind == "array_value" or kind == "kvlist_value":
        return None
    value: str | bool | int | float | bytes = getattr(v, kind)
    return value


def pick(attributes: Attributes, keys: frozenset[str] | set[str]) -> dict[str, AnyValue]:
    """One scan over ``attributes`` returning the AnyValue of each wanted key present."""
    found: dict[str, AnyValue] = {}
    for kv in attributes:
        if kv.key in keys:
            found[kv.key] = kv.value
    return found


def get(attributes: Attributes, key: str) -> AnyValue | None:
    for kv in attributes:
        if kv.key == key:
            return kv.value
    return None


def get_str(attributes: Attributes, key: str) -> str | None:
    v = get(attributes, key)
    if v is None or v.WhichOneof("value") != "string_value":
        return None
    return v.string_value


def _slot(attributes: Attributes, key: str) -> AnyValue:
    for kv in attributes:
        if kv.key == key:
            kv.value.Clear()
            return kv.value
    kv = attributes.add()
    kv.key = key
    return kv.value


def set_str(attributes: Attributes, key: str, value: str) -> None:
    _slot(attributes, key).string_value = value


def set_int(attributes: Attributes, key: str, value: int) -> None:
    _slot(attributes, key).int_value = value


def set_double(attributes: Attributes, key: str, value: float) -> None:
    _slot(attributes, key).double_value = value


def set_bool(attributes: Attributes, key: str, value: bool) -> None:
    _slot(attributes, key).bool_value = value


def set_str_array(attributes: Attributes, key: str, values: Iterable[str]) -> None:
    arr = _slot(attributes, key).array_value
    for s in values:
        arr.values.add().string_value = s


def set_int_array(attributes: Attributes, key: str, values: Iterable[int]) -> None:
    arr = _slot(attributes, key).array_value
    for n in values:
        arr.values.add().int_value = n


def remove_if(attributes: Attributes, doomed: Callable[[str], bool]) -> int:
    """Delete every attribute whose key ``doomed`` accepts; returns how many were removed."""
    removed = 0
    i = len(attributes) - 1
    while i >= 0:
        if doomed(attributes[i].key):
            del attributes[i]
            removed += 1
        i -= 1
    return removed


def remove(attributes: Attributes, keys: Sequence[str] | set[str] | frozenset[str]) -> int:
    """Delete every attribute whose key is in ``keys``; returns how many were removed."""
    return remove_if(attributes, keys.__contains__)


def remove_prefixed(attributes: Attributes, prefix: str) -> int:
    """Delete every attribute whose key starts with ``prefix``; returns how many."""
    return remove_if(attributes, lambda key: key.startswith(prefix))
