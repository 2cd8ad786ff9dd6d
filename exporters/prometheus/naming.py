"""OTLP -> Prometheus names, following the OpenTelemetry Collector's translation rules.

The rules are those of the Collector's ``pkg/translator/prometheus`` (normalised names
with unit and type suffixes). No maintained Python library implements them — the OTel
Python SDK's Prometheus exporter has its own, older variant — so they are written here,
small and table driven.
"""

from __future__ import annotations

import re
from functools import lru_cache

# OTLP (UCUM) units -> the word used as a Prometheus suffix.
UNIT_WORDS: dict[str, str] = {
    # time
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    # bytes
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    # SI
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    # misc
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}

# The denominator of a "x/y" unit becomes "per_<word>".
PER_UNIT_WORDS: dict[str, str] = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "mo": "month",
    "y": "year",
}

_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")
_NON_ALNUM = re.compile(r"[^a-zA-Z0-9]+")
_ANNOTATION = re.compile(r"\{[^}]*\}")


def unit_suffix(unit: str) -> tuple[str, str]:
    """The (main, per) suffix words of an OTLP unit; either may be empty.

    Curly-brace annotations such as ``{token}`` or ``{request}/s`` carry no unit and
    are dropped, as the Collector does.
    """
    unit = _ANNOTATION.sub("", unit).strip()
    if not unit:
        return "", ""
    main, _, per = unit.partition("/")
    main_word = UNIT_WORDS.get(main, main) if main else ""
    per_word = PER_UNIT_WORDS.get(per, per) if per else ""
    return _clean_token(main_word), _clean_token(per_word)


def _clean_token(word: str) -> str:
    return "_".join(t for t in _NON_ALNUM.split(word) if t)


@lru_cache(maxsize=4096)
def metric_name(
    name: str,
    unit: str,
    *,
    counter: bool = False,
    gauge: bool = False,
    namespace: str = "",
    add_suffixes: bool = True,
) -> tuple[str, str]:
    """(Prometheus family name without ``_total``, OpenMetrics unit) for an OTLP metric.

    ``counter`` marks a monotonic sum (its samples get ``_total``); the ``_total`` token
    is stripped from the family name here because the exposition library appends it.
    A gauge in unit ``1`` gets ``_ratio``. The returned unit is the suffix added, which
    OpenMetrics wants declared (empty when no unit suffix ends the name).
    """
    tokens = [t for t in _NON_ALNUM.split(name) if t]
    om_unit = ""
    if add_suffixes:
        main, per = unit_suffix(unit)
        if main and main not in tokens:
            tokens.append(main)
        if per:
            per_tokens = ["per", *per.split("_")]
            if not _contains_run(tokens, per_tokens):
                tokens.extend(per_tokens)
        if counter:
            tokens = [t for t in tokens if t != "total"]
        if gauge and unit == "1" and "ratio" not in tokens:
            tokens.append("ratio")
        unit_words = [w for w in (main, "_".join(["per", per]) if per else "") if w]
        om_unit = "_".join(unit_words) if unit_words else ""
    elif counter:
        tokens = [t for t in tokens if t != "total"] if tokens and tokens[-1] == "total" else tokens
    if namespace:
        tokens = [t for t in _NON_ALNUM.split(namespace) if t] + tokens
    result = "_".join(tokens)
    if not result:
        result = "_"
    if result[0].isdigit():
        result = "_" + result
    result = _INVALID_NAME_CHARS.sub("_", result)
    if om_unit and not result.endswith("_" + om_unit):
        om_unit = ""
    return result, om_unit


def _contains_run(tokens: list[str], run: list[str]) -> bool:
    n = len(run)
    return any(tokens[i : i + n] == run for i in range(len(tokens) - n + 1))


@lru_cache(maxsize=8192)
def label_name(key: str) -> str:
    """An OTLP attribute key as a Prometheus label name (Collector ``NormalizeLabel``)."""
    if not key:
        return key
    label = _INVALID_LABEL_CHARS.sub("_", key)
    if label[0].isdigit():
        label = "key_" + label
    elif label.startswith("_") and not label.startswith("__"):
        label = "key" + label
    return label
