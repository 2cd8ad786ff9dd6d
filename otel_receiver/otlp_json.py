"""OTLP/JSON encoding of the OTLP request messages.

The OTLP spec's JSON encoding is the protobuf JSON mapping with three differences:
trace and span ids are hex strings instead of base64, enums are integers, and
receivers must ignore unknown fields. Both directions walk the protobuf descriptors
here, rather than going through ``google.protobuf.json_format``, because the spec's
hex ids and the error contract need control over every field: a malformed request
is answered with one ``OtlpJsonError`` whose message names the field path
(``resourceSpans[0].scopeSpans[1].spans[3].traceId: ...``) but never any value from
the body, since attribute values may hold personal data. json_format's messages quote
the offending values, and it also knows nothing of hex ids. Measured on realistic
GenAI traces, this walk also decodes about 4x faster than json_format
(``python -m bench.bench_codec_batch``, numbers in bench/README.md).

Accepted on decode, as protobuf's JSON parser does: lowerCamelCase or the original
snake_case key of every field; enums as integers or names; 64-bit integers as
strings or numbers; doubles as numbers, numeric strings, ``"NaN"``, ``"Infinity"``,
``"-Infinity"``; bytes as standard or URL-safe base64; ``null`` as "not set".
Nesting is limited to the depth the binary protobuf parser accepts, so whatever the
JSON receiver accepts can be re-encoded and parsed as protobuf downstream.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

__all__ = ["MAX_MESSAGE_DEPTH", "OtlpJsonError", "decode", "encode", "to_dict"]

# upb's default recursion limit for binary parsing (upb_DecodeOptions_MaxDepth): a
# request nested deeper could not be re-parsed from protobuf by any of our exporters.
MAX_MESSAGE_DEPTH = 100

M = TypeVar("M", bound=Message)


class OtlpJsonError(ValueError):
    """A request body that is not valid OTLP/JSON; the message is safe to return and log."""


class _Invalid(Exception):
    """Raised deep in the walk; each level adds its path segment while it unwinds."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.segments: list[str] = []


# Byte lengths of the id fields that OTLP/JSON writes as hex (Span, Span.Link,
# LogRecord, Exemplar); every other bytes field keeps protobuf's base64.
_ID_LENGTHS = {"trace_id": 16, "span_id": 8, "parent_span_id": 8}

_INT_RE = re.compile(r"-?[0-9]+")
_FLOAT_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_FLOAT32_MAX = 3.4028234663852886e38

_INT32 = (-(2**31), 2**31 - 1)
_UINT32 = (0, 2**32 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = (0, 2**64 - 1)

_T = FieldDescriptor
_RANGES: dict[int, tuple[int, int]] = {
    _T.TYPE_INT32: _INT32,
    _T.TYPE_SINT32: _INT32,
    _T.TYPE_SFIXED32: _INT32,
    _T.TYPE_UINT32: _UINT32,
    _T.TYPE_FIXED32: _UINT32,
    _T.TYPE_INT64: _INT64,
    _T.TYPE_SINT64: _INT64,
    _T.TYPE_SFIXED64: _INT64,
    _T.TYPE_UINT64: _UINT64,
    _T.TYPE_FIXED64: _UINT64,
}
_INT64_TYPES = frozenset({_T.TYPE_INT64, _T.TYPE_SINT64, _T.TYPE_SFIXED64, _T.TYPE_UINT64, _T.TYPE_FIXED64})


# ---------------------------------------------------------------------------
# scalar converters (JSON value -> protobuf Python value)


def _integer(value: Any, bounds: tuple[int, int]) -> int:
    kind = type(value)
    if kind is int:
        number = value
    elif kind is str:
        if _INT_RE.fullmatch(value) is None:
            raise _Invalid("expected an integer")
        number = int(value)
    elif kind is float:
        if not value.is_integer():
            raise _Invalid("expected an integer")
        number = int(value)
    else:
        raise _Invalid("expected an integer")
    if not bounds[0] <= number <= bounds[1]:
        raise _Invalid("integer out of range")
    return number


def _double(value: Any) -> float:
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            raise _Invalid("number out of range") from None
    if kind is str:
        special = _SPECIAL_FLOATS.get(value)
        if special is not None:
            return special
        if _FLOAT_RE.fullmatch(value) is None:
            raise _Invalid("expected a number")
        number = float(value)
        if math.isinf(number):
            raise _Invalid("number out of range")
        return number
    raise _Invalid("expected a number")


def _float32(value: Any) -> float:
    number = _double(value)
    if math.isfinite(number) and abs(number) > _FLOAT32_MAX:
        raise _Invalid("number out of range")
    return number


def _string(value: Any) -> str:
    if type(value) is not str:
        raise _Invalid("expected a string")
    return value


def _boolean(value: Any) -> bool:
    if type(value) is not bool:
        raise _Invalid("expected true or false")
    return value


_URLSAFE_TO_STD = str.maketrans("-_", "+/")


def _base64(value: Any) -> bytes:
    if type(value) is not str:
        raise _Invalid("expected a base64 string")
    text = value.translate(_URLSAFE_TO_STD)
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _Invalid("invalid base64") from None


def _hex_id(length: int) -> Callable[[Any], bytes]:
    digits = 2 * length

    def convert(value: Any) -> bytes:
        if type(value) is not str:
            raise _Invalid("expected a hex string")
        if not value:
            return b""
        if len(value) != digits:
            raise _Invalid(f"invalid id length: expected {digits} hex digits, got {len(value)}")
        try:
            return binascii.unhexlify(value)
        except (binascii.Error, ValueError):
            raise _Invalid("invalid hex") from None

    return convert


def _enum(enum: EnumDescriptor) -> Callable[[Any], int]:
    by_name = {v.name: v.number for v in enum.values}

    def convert(value: Any) -> int:
        if type(value) is str:
            number = by_name.get(value)
            if number is not None:
                return number
            if _INT_RE.fullmatch(value) is None:
                raise _Invalid(f"unknown {enum.name} value")
        return _integer(value, _INT32)

    return convert


def _scalar_converter(field: FieldDescriptor) -> Callable[[Any], Any]:
    t = field.type
    if t == _T.TYPE_STRING:
        return _string
    if t == _T.TYPE_BOOL:
        return _boolean
    if t == _T.TYPE_DOUBLE:
        return _double
    if t == _T.TYPE_FLOAT:
        return _float32
    if t == _T.TYPE_BYTES:
        id_length = _ID_LENGTHS.get(field.name)
        return _base64 if id_length is None else _hex_id(id_length)
    if t == _T.TYPE_ENUM:
        return _enum(field.enum_type)
    bounds = _RANGES.get(t)
    if bounds is None:
        raise TypeError(f"field type {t} of {field.full_name} is not used by OTLP")
    return lambda value: _integer(value, bounds)


# ---------------------------------------------------------------------------
# scalar encoders (protobuf Python value -> JSON value)


def _encode_double(value: float) -> float | str:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _encode_base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _encode_hex(value: bytes) -> str:
    return value.hex()


def _scalar_encoder(field: FieldDescriptor) -> Callable[[Any], Any] | None:
    """None: the Python value is already the JSON value."""
    t = field.type
    if t in _INT64_TYPES:
        return str
    if t in (_T.TYPE_DOUBLE, _T.TYPE_FLOAT):
        return _encode_double
    if t == _T.TYPE_BYTES:
        return _encode_base64 if field.name not in _ID_LENGTHS else _encode_hex
    return None


# ---------------------------------------------------------------------------
# per-message tables, built once per descriptor


@dataclass(slots=True)
class _Field:
    name: str
    json_name: str
    number: int
    repeated: bool
    oneof: str | None
    message: Descriptor | None  # set for message fields
    convert: Callable[[Any], Any] | None  # set for scalar fields
    encode: Callable[[Any], Any] | None
    table: dict[str, _Field] | None = None  # decode table of a message field, resolved on first use


# Keyed by the descriptor objects themselves: upb hands out the same object every time,
# and hashing it is cheaper than building its full_name string.
_DECODE_TABLES: dict[Descriptor, dict[str, _Field]] = {}
_ENCODE_TABLES: dict[Descriptor, dict[FieldDescriptor, _Field]] = {}


def _build_tables(descriptor: Descriptor) -> None:
    by_key: dict[str, _Field] = {}
    by_field: dict[FieldDescriptor, _Field] = {}
    for fd in descriptor.fields:
        is_message = fd.type == _T.TYPE_MESSAGE
        if is_message and fd.message_type.GetOptions().map_entry:
            raise TypeError(f"map field {fd.full_name} is not used by OTLP")
        spec = _Field(
            name=fd.name,
            json_name=fd.json_name,
            number=fd.number,
            repeated=fd.is_repeated,
            oneof=fd.containing_oneof.name if fd.containing_oneof is not None else None,
            message=fd.message_type if is_message else None,
            convert=None if is_message else _scalar_converter(fd),
            encode=None if is_message else _scalar_encoder(fd),
        )
        by_key[fd.json_name] = spec
        by_key[fd.name] = spec
        by_field[fd] = spec
    _DECODE_TABLES[descriptor] = by_key
    _ENCODE_TABLES[descriptor] = by_field


def _decode_table(descriptor: Descriptor) -> dict[str, _Field]:
    table = _DECODE_TABLES.get(descriptor)
    if table is None:
        _build_tables(descriptor)
        table = _DECODE_TABLES[descriptor]
    return table


def _encode_table(descriptor: Descriptor) -> dict[FieldDescriptor, _Field]:
    table = _ENCODE_TABLES.get(descriptor)
    if table is None:
        _build_tables(descriptor)
        table = _ENCODE_TABLES[descriptor]
    return table


# ---------------------------------------------------------------------------
# decode


def _fill(message: Message, obj: dict[str, Any], table: dict[str, _Field], depth: int) -> None:
    # Duplicate and oneof checks only matter with two keys or more; most AnyValue and
    # KeyValue objects have one or two, so the single-key case skips the bookkeeping.
    check = len(obj) > 1
    seen: set[int] = set()
    oneofs: set[str] = set()
    for key, value in obj.items():
        spec = table.get(key)
        if spec is None or value is None:
            continue
        try:
            if check:
                if spec.number in seen:
                    raise _Invalid("field given twice")
                seen.add(spec.number)
                if spec.oneof is not None:
                    if spec.oneof in oneofs:
                        raise _Invalid(f"more than one field of oneof '{spec.oneof}' given")
                    oneofs.add(spec.oneof)
            if spec.message is not None:
                if depth >= MAX_MESSAGE_DEPTH:
                    raise _Invalid(f"nested deeper than {MAX_MESSAGE_DEPTH} messages")
                child_table = spec.table
                if child_table is None:
                    child_table = spec.table = _decode_table(spec.message)
                if spec.repeated:
                    if type(value) is not list:
                        raise _Invalid("expected an array")
                    container = getattr(message, spec.name)
                    for index, item in enumerate(value):
                        try:
                            if type(item) is not dict:
                                raise _Invalid("expected an object")
                            _fill(container.add(), item, child_table, depth + 1)
                        except _Invalid as exc:
                            exc.segments.append(f"[{index}]")
                            raise
                else:
                    if type(value) is not dict:
                        raise _Invalid("expected an object")
                    child = getattr(message, spec.name)
                    child.SetInParent()
                    _fill(child, value, child_table, depth + 1)
            else:
                convert = spec.convert
                assert convert is not None
                if spec.repeated:
                    if type(value) is not list:
                        raise _Invalid("expected an array")
                    converted = []
                    for index, item in enumerate(value):
                        try:
                            if item is None:
                                raise _Invalid("null is not allowed in an array")
                            converted.append(convert(item))
                        except _Invalid as exc:
                            exc.segments.append(f"[{index}]")
                            raise
                    getattr(message, spec.name).extend(converted)
                else:
                    setattr(message, spec.name, convert(value))
        except _Invalid as exc:
            exc.segments.append(spec.json_name)
            raise


def _path(segments: list[str]) -> str:
    out: list[str] = []
    for segment in reversed(segments):
        if out and not segment.startswith("["):
            out.append(".")
        out.append(segment)
    return "".join(out)


def decode(request_type: type[M], body: bytes | bytearray | memoryview | str) -> M:
    """Parse an OTLP/JSON request body into a new ``request_type`` message.

    Raises ``OtlpJsonError`` for anything that is not valid OTLP/JSON; its message
    names the offending field's path and never contains values from the body.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = str(exc).partition(":")[0]
        if "UTF-8" in str(exc):
            raise OtlpJsonError("request body is not valid UTF-8") from None
        raise OtlpJsonError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {reason}") from None
    if type(document) is not dict:
        raise OtlpJsonError("the request must be a JSON object")
    message = request_type()
    try:
        _fill(message, document, _decode_table(message.DESCRIPTOR), 0)
    except _Invalid as exc:
        raise OtlpJsonError(f"{_path(exc.segments)}: {exc.reason}") from None
    return message


# ---------------------------------------------------------------------------
# encode


def to_dict(message: Message) -> dict[str, Any]:
    """The OTLP/JSON object of ``message`` (hex ids, lowerCamelCase, integer enums,
    64-bit integers as strings), as plain dicts and lists."""
    table = _encode_table(message.DESCRIPTOR)
    out: dict[str, Any] = {}
    for fd, value in message.ListFields():
        spec = table[fd]
        if spec.message is not None:
            out[spec.json_name] = [to_dict(item) for item in value] if spec.repeated else to_dict(value)
        elif spec.encode is None:
            out[spec.json_name] = list(value) if spec.repeated else value
        else:
            encode_value = spec.encode
            out[spec.json_name] = (
                [encode_value(item) for item in value] if spec.repeated else encode_value(value)
            )
    return out


def encode(message: Message) -> bytes:
    """Compact OTLP/JSON of ``message`` in UTF-8, without a trailing newline."""
    return orjson.dumps(to_dict(message))
