"""Attribute and metric names: the OpenTelemetry GenAI semantic conventions we read and
write, and the attributes our processors add (DESIGN.md, "Span attributes written by
processors"). Every other module takes names from here, never from string literals."""

from semconv.attributes import *  # noqa: F403
