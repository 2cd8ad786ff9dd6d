"""Optional named-entity recognition through Presidio (extra ``[ner]``).

Names and street addresses have no checkable structure, so only a statistical model finds
them. Presidio's analyzer runs a spaCy pipeline on every string it is given: expect
milliseconds per prompt (not measured here: no model download is possible in this
environment) and a model of several hundred MB in memory.
It is therefore off by default, and when it is on, the request prefilter is bypassed (no
anchor can prove a string free of names).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any


def make_ner(
    entities: Sequence[str], language: str, score_threshold: float
) -> Callable[[str], list[tuple[int, int, str]]]:
    """A function returning ``(start, end, entity_type)`` character spans for ``text``."""
    try:
        analyzer_module = importlib.import_module("presidio_analyzer")
    except ImportError as e:  # the config validator normally reports this first
        raise ValueError(
            "ner.enabled requires presidio-analyzer (pip install 'otel-genai-receiver[ner]')"
        ) from e
    analyzer: Any = analyzer_module.AnalyzerEngine()
    wanted = list(entities)

    def analyze(text: str) -> list[tuple[int, int, str]]:
        if not text.strip():
            return []
        results = analyzer.analyze(
            text=text, entities=wanted, language=language, score_threshold=score_threshold
        )
        return [(r.start, r.end, r.entity_type) for r in results]

    return analyze
