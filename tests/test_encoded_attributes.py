"""Attributes encoded by hand (``otel_receiver.encoded_attributes``) parse to what the
protobuf API builds, for every helper, value edge and both lengths of varint."""

from __future__ import annotations

import struct

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from otel_receiver.encoded_attributes import (
    LOG_RECORD_ATTRIBUTES,
    SPAN_ATTRIBUTES,
    double_prefix,
    int_array_attribute,
    int_attribute,
    string_array_attribute,
    string_attribute,
    true_attribute,
)

LONG = "x" * 300  # lengths over 127 take two varint bytes
MESSAGES = [(Span, SPAN_ATTRIBUTES), (LogRecord, LOG_RECORD_ATTRIBUTES), (Resource, 1)]


def _merged(message_type: type, blob: bytes) -> KeyValue:
    message = message_type()
    message.MergeFromString(blob)
    (kv,) = message.attributes
    return kv


@pytest.mark.parametrize(("message_type", "field"), MESSAGES)
@pytest.mark.parametrize("key", ["k", "pii.redacted.count", LONG])
def test_every_helper_parses_to_what_the_api_builds(message_type: type, field: int, key: str) -> None:
    cases = [
        (string_attribute(key, "value", field), AnyValue(string_value="value")),
        (string_attribute(key, LONG, field), AnyValue(string_value=LONG)),
        (string_attribute(key, "é🙂", field), AnyValue(string_value="é🙂")),
        (double_prefix(key, field) + struct.pack("<d", -2.5), AnyValue(double_value=-2.5)),
        (true_attribute(key, field), AnyValue(bool_value=True)),
    ]
    for n in (0, 1, 127, 128, 2**63 - 1, -1, -(2**63)):
        cases.append((int_attribute(key, n, field), AnyValue(int_value=n)))
    for values in ([], ["EMAIL"], ["CREDIT_CARD", "EMAIL", LONG]):
        strings = ArrayValue(values=[AnyValue(string_value=v) for v in values])
        cases.append((string_array_attribute(key, values, field), AnyValue(array_value=strings)))
    for counts in ([], [1], [3, 200, 2**40, -7]):
        ints = ArrayValue(values=[AnyValue(int_value=n) for n in counts])
        cases.append((int_array_attribute(key, counts, field), AnyValue(array_value=ints)))
    for blob, value in cases:
        assert _merged(message_type, blob) == KeyValue(key=key, value=value)
