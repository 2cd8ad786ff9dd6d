"""Protobuf wire-format bytes built by hand, for tests that need encodings protobuf-python
will not produce (values nested deeper than it builds, a message split over two fields)."""

from __future__ import annotations


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
