"""Protobuf wire-format bytes built by hand, for tests that need encodings protobuf-python
will not produce (values nested deeper than it builds, a message split over two fields,
a client's field order and padded lengths)."""

from __future__ import annotations

import random


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: tag, varint length, payload."""
    length = len(payload)
    varint = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        varint.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([number << 3 | 2]) + bytes(varint) + payload


def _varint(value: int, width: int = 0) -> bytes:
    """``value`` as a varint, padded with redundant continuation bytes to ``width``
    bytes (parsers accept them; protobuf never writes them)."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte)
        if not value:
            break
    while len(out) < width:
        out.append(0)
    for i in range(len(out) - 1):
        out[i] |= 0x80
    return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def top_fields(buf: bytes) -> list[tuple[int, int, bytes]]:
    """(field number, wire type, the whole field's bytes, or the payload of a
    length-delimited one) of a message, in order."""
    out: list[tuple[int, int, bytes]] = []
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _read_varint(buf, pos)
        wire = key & 7
        if wire == 2:
            n, pos = _read_varint(buf, pos)
            out.append((key >> 3, 2, buf[pos : pos + n]))
            pos += n
            continue
        if wire == 0:
            _, pos = _read_varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wire}")
        out.append((key >> 3, wire, buf[start:pos]))
    return out


# The OTLP messages of traces and logs requests: per field number, the message it holds
# and whether it is singular (a message the parser merges when it occurs twice).
_OTLP: dict[str, dict[int, tuple[str, bool]]] = {
    "ExportTraceServiceRequest": {1: ("ResourceSpans", False)},
    "ExportLogsServiceRequest": {1: ("ResourceLogs", False)},
    "ResourceSpans": {1: ("Resource", True), 2: ("ScopeSpans", False)},
    "ResourceLogs": {1: ("Resource", True), 2: ("ScopeLogs", False)},
    "Resource": {1: ("KeyValue", False)},
    "ScopeSpans": {1: ("InstrumentationScope", True), 2: ("Span", False)},
    "ScopeLogs": {1: ("InstrumentationScope", True), 2: ("LogRecord", False)},
    "InstrumentationScope": {3: ("KeyValue", False)},
    "Span": {9: ("KeyValue", False), 11: ("Event", False), 13: ("Link", False), 15: ("Status", True)},
    "Event": {3: ("KeyValue", False)},
    "Link": {4: ("KeyValue", False)},
    "Status": {},
    "LogRecord": {5: ("AnyValue", True), 6: ("KeyValue", False)},
    "KeyValue": {2: ("AnyValue", True)},
    "AnyValue": {5: ("ArrayValue", True), 6: ("KeyValueList", True)},
    "ArrayValue": {1: ("AnyValue", False)},
    "KeyValueList": {1: ("KeyValue", False)},
}


def client_encoding(buf: bytes, message: str, rng: random.Random, split: float = 0.1) -> bytes:
    """Another encoding of the serialized ``message`` that protobuf parses to the same
    message but never writes: fields of different numbers in another order, padded
    tags and length prefixes, and (with probability ``split`` each) singular messages split over
    two fields, which the parser merges back into one."""
    schema = _OTLP[message]
    fields = top_fields(buf)
    # A random order of the field numbers; each number's occurrences keep their order.
    rank = {number: rng.random() for number, _, _ in fields}
    fields.sort(key=lambda f: rank[f[0]])
    out = bytearray()
    for number, wire, data in fields:
        if wire != 2:
            out += data
            continue
        child = schema.get(number)
        payload = client_encoding(data, child[0], rng, split) if child is not None else data
        parts = [payload]
        if child is not None and child[1] and rng.random() < split:
            inner = top_fields(payload)
            cut = rng.randrange(len(inner) + 1)
            parts = [_join(inner[:cut]), _join(inner[cut:])]
        for part in parts:
            tag = _varint(number << 3 | 2, rng.choice((0, 0, 0, 0, 2)))
            out += tag + _varint(len(part), rng.choice((0, 0, 0, 3))) + part
    return bytes(out)


def _join(fields: list[tuple[int, int, bytes]]) -> bytes:
    return b"".join(
        data if wire != 2 else _varint(number << 3 | 2) + _varint(len(data)) + data
        for number, wire, data in fields
    )
