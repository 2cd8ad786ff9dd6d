"""Keeps protobuf's periodic ``malloc_trim`` from costing every request page faults.

protobuf's upb runtime calls glibc's ``malloc_trim(0)`` every 10,000 arena frees. In a
receiver that parses requests all day, each call returns the free heap to the kernel and
the following requests fault it back in: up to a quarter of the raw receive cost on the
benchmark (see ``_upbtrim.c``). ``pace_protobuf_malloc_trim`` lets one call through per
interval (60 s by default; ``OTEL_RECEIVER_PROTOBUF_TRIM_INTERVAL``, ``0`` leaves protobuf as is),
so freed memory still goes back to the kernel while traffic flows.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

log = logging.getLogger("otel_receiver.memory")

TRIM_INTERVAL_ENV = "OTEL_RECEIVER_PROTOBUF_TRIM_INTERVAL"
DEFAULT_TRIM_INTERVAL_S = 60.0


def trim_interval(environ: Mapping[str, str]) -> float:
    """The configured interval in seconds; ValueError names the variable when it is invalid."""
    text = environ.get(TRIM_INTERVAL_ENV, "").strip()
    if not text:
        return DEFAULT_TRIM_INTERVAL_S
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"{TRIM_INTERVAL_ENV} must be a number of seconds, got {text!r}") from None
    if not 0 <= seconds <= 1e9:
        raise ValueError(f"{TRIM_INTERVAL_ENV} must be within 0..1e9 seconds, got {text!r}")
    return seconds


def pace_protobuf_malloc_trim(environ: Mapping[str, str] = os.environ) -> int:
    """Paces upb's ``malloc_trim`` calls; the number of call sites paced (0: left as is:
    disabled, no C extension here (not Linux/glibc, no compiler), or upb not found)."""
    seconds = trim_interval(environ)
    if seconds == 0:
        return 0
    try:
        from otel_receiver import _upbtrim
    except ImportError:
        return 0
    # upb must be loaded for its call sites to be found.
    from google.protobuf.internal import api_implementation

    if api_implementation.Type() != "upb":
        return 0
    import google._upb._message  # noqa: F401

    try:
        sites = _upbtrim.pace(seconds)
    except OSError as e:  # its page could not be made writable: a hardened runtime
        log.warning("protobuf's malloc_trim left as is: %s", e)
        return 0
    if sites:
        log.debug("protobuf's malloc_trim paced to one call per %.0f s (%d call sites)", seconds, sites)
    else:
        log.info("protobuf's malloc_trim not found in its upb module: left as is")
    return sites
