"""Attributes as pre-encoded protobuf wire bytes, appended with one ``MergeFromString``.

Appending attributes through the protobuf API costs ~1-2 µs each (a Python wrapper per
KeyValue and per AnyValue); merging their wire encoding costs one C call per item. A
repeated field merges by appending, so ``span.MergeFromString(blob)`` adds the KeyValues
exactly as ``attributes.add()`` would. protobuf offers no encoder for a lone field of a
message, hence these few lines of wire format.
"""

from __future__ import annotations

from typing import Final

SPAN_ATTRIBUTES: Final = 9  # opentelemetry.proto.trace.v1.Span.attributes
LOG_RECORD_ATTRIBUTES: Final = 6  # opentelemetry.proto.logs.v1.LogRecord.attributes


def varint(n: int) -> bytes:
    if n < 0x4000:  # lengths of strings up to 16 kB: no loop
        return bytes((n,)) if n < 0x80 else bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def attribute_prefix(key: str, any_value_len: int, field: int = SPAN_ATTRIBUTES) -> bytes:
    """Wire bytes of one entry of the message's ``attributes`` (field number ``field``)
    up to its AnyValue's content, which is ``any_value_len`` bytes long."""
    k = key.encode()
    body = b"\x0a" + varint(len(k)) + k + b"\x12" + varint(any_value_len)
    return varint(field << 3 | 2) + varint(len(body) + any_value_len) + body


def string_attribute(key: str, value: str, field: int = SPAN_ATTRIBUTES) -> bytes:
    k = key.encode()
    v = value.encode()
    if len(k) + len(v) < 120:
        # Every length fits one varint byte: the common case (ids, names), ~4x faster.
        kv_len = len(k) + len(v) + 6
        return bytes((field << 3 | 2, kv_len, 0x0A, len(k))) + k + bytes((0x12, len(v) + 2, 0x0A, len(v))) + v
    any_value = b"\x0a" + varint(len(v)) + v  # AnyValue.string_value = 1
    return attribute_prefix(key, len(any_value), field) + any_value


def double_prefix(key: str, field: int = SPAN_ATTRIBUTES) -> bytes:
    """Everything of a double attribute but its 8 little-endian value bytes."""
    return attribute_prefix(key, 9, field) + b"\x21"  # AnyValue.double_value = 4, fixed64


def true_attribute(key: str, field: int = SPAN_ATTRIBUTES) -> bytes:
    return attribute_prefix(key, 2, field) + b"\x10\x01"  # AnyValue.bool_value = 2


def _int_value(n: int) -> bytes:
    """An AnyValue holding ``n`` (int_value = 3, an int64 varint)."""
    return b"\x18" + varint(n & 0xFFFFFFFFFFFFFFFF)


def int_attribute(key: str, n: int, field: int = SPAN_ATTRIBUTES) -> bytes:
    value = _int_value(n)
    return attribute_prefix(key, len(value), field) + value


def _array_attribute(key: str, elements: list[bytes], field: int) -> bytes:
    array = b"".join(b"\x0a" + varint(len(e)) + e for e in elements)  # ArrayValue.values = 1
    value = b"\x2a" + varint(len(array)) + array  # AnyValue.array_value = 5
    return attribute_prefix(key, len(value), field) + value


def string_array_attribute(key: str, values: list[str], field: int = SPAN_ATTRIBUTES) -> bytes:
    elements = []
    for v in values:
        b = v.encode()
        elements.append(b"\x0a" + varint(len(b)) + b)
    return _array_attribute(key, elements, field)


def int_array_attribute(key: str, values: list[int], field: int = SPAN_ATTRIBUTES) -> bytes:
    return _array_attribute(key, [_int_value(n) for n in values], field)
