"""pii_redaction's mask step in C (``_masker.h``) against the Python path it stands in for.

When every detector's action is ``mask`` and there is no NER, ``Redactor.redact_text``
hands the validated hits of a flagged string to ``_prefilter.Masker.mask``: overlaps are
resolved, JSON documents checked, the hits masked and counted there. The reference is the
Python path (``engine._resolve``, ``json_strings_hold``, ``Redactor.redact_bytes``), which
the other actions and builds without the C pass still take.
"""

from __future__ import annotations

import json
import logging
import random

import pytest

from bench.workload import generate_trace_requests
from otel_receiver.component import ComponentSettings
from otel_receiver.telemetry import SelfTelemetry
from processors.pii_redaction import PiiRedactionConfig, PiiRedactionProcessor, factory
from processors.pii_redaction.detectors import Detector
from processors.pii_redaction.engine import Hit, Redactor, Tally, _resolve, json_strings_hold
from tests.test_pii_corpus import TEMPLATES, build_corpus

_prefilter = pytest.importorskip("processors.pii_redaction._prefilter")

TYPES = ["EMAIL", "PHONE", "SECRET", "IBAN"]


def _detectors(rng: random.Random, n: int) -> list[Detector]:
    # Few distinct priorities: ties between overlapping hits are the hard cases.
    return [Detector(f"d{i}", rng.choice(TYPES), "x", (), priority=rng.choice([0, 1, 2])) for i in range(n)]


def _reference(
    detectors: list[Detector], buf: bytes, hits: list[tuple[int, int, int]], as_json: bool
) -> tuple[bytes, dict[str, int]] | None:
    kept = _resolve([Hit(s, e, detectors[i]) for i, s, e in hits])
    if as_json and not json_strings_hold(buf, [(h.start, h.end) for h in kept]):
        return None
    out, last, counts = [], 0, {}
    for h in kept:
        out.append(buf[last : h.start])
        out.append(f"[REDACTED:{h.detector.type}]".encode())
        counts[h.detector.type] = counts.get(h.detector.type, 0) + 1
        last = h.end
    out.append(buf[last:])
    return b"".join(out), counts


def _random_case(rng: random.Random) -> tuple[bytes, list[tuple[int, int, int]]]:
    alphabet = b'ab "\\:{}x' if rng.random() < 0.5 else b"abcdef ."
    buf = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
    hits = []
    for _ in range(rng.randrange(1, 9)):
        start = rng.randrange(0, len(buf) + 1)
        end = min(len(buf), start + rng.choice([0, 1, 2, 3, 5, 8, 13]))
        hits.append((rng.randrange(6), start, end))
    if rng.random() < 0.3:  # the same span found twice, by the same detector or another
        _, start, end = rng.choice(hits)
        hits.append((rng.randrange(6), start, end))
    return buf, hits


def test_the_masker_resolves_checks_and_masks_as_the_python_path() -> None:
    """20,000 random hit sets on strings of quotes, backslashes and letters: overlapping
    hits of equal and different priorities and lengths, repeated and zero-length ones."""
    rng = random.Random(11)
    overlapping = outside_json = 0
    for _ in range(200):
        detectors = _detectors(rng, 6)
        type_names = sorted({d.type for d in detectors})
        masker = _prefilter.Masker(
            [d.priority for d in detectors],
            [f"[REDACTED:{d.type}]".encode() for d in detectors],
            [type_names.index(d.type) for d in detectors],
        )
        for _ in range(100):
            buf, hits = _random_case(rng)
            as_json = rng.random() < 0.5
            expected = _reference(detectors, buf, hits, as_json)
            got = masker.mask(buf, hits, as_json)
            if got is not None:
                got = got[0], {type_names[t]: n for t, n in got[1]}
            assert got == expected, (buf, hits, as_json)
            overlapping += len(_resolve([Hit(s, e, detectors[i]) for i, s, e in hits])) < len(hits)
            outside_json += expected is None
    assert overlapping > 5000 and outside_json > 2000  # both kinds of case were met


def test_the_masker_refuses_hits_it_cannot_place() -> None:
    masker = _prefilter.Masker([0, 1], [b"[A]", b"[B]"], [0, 1])
    for hits in ([(2, 0, 1)], [(-1, 0, 1)], [(0, 2, 1)], [(0, 0, 9)], [(0, -1, 1)]):
        with pytest.raises(ValueError):
            masker.mask(b"abcd", hits, False)
    with pytest.raises(TypeError):
        masker.mask(b"abcd", [(0, 1)], False)
    with pytest.raises(ValueError):
        _prefilter.Masker([0], [b"[A]", b"[B]"], [0])
    with pytest.raises(ValueError):
        _prefilter.Masker([0], ["[A]"], [0])
    assert masker.mask(b"abcd", [(1, 1, 3), (0, 0, 2)], False) == (b"a[B]d", ((1, 1),))


def _processor(**config: object) -> PiiRedactionProcessor:
    proc = factory.create(
        PiiRedactionConfig.model_validate(config),
        ComponentSettings("pii_redaction", SelfTelemetry(), logging.getLogger("masker")),
    )
    assert isinstance(proc, PiiRedactionProcessor)
    return proc


def _texts() -> list[str]:
    """The labelled corpus in its templates, the workload's prompts at 100% PII, and JSON
    documents with values where the raw-text check must give way to parsing."""
    rng = random.Random(5)
    texts = [rng.choice(TEMPLATES).format(item.value) for item in build_corpus()]
    for request in generate_trace_requests(3, 100, seed=8, pii_fraction=1.0):
        for span in request.resource_spans[0].scope_spans[0].spans:
            texts.extend(kv.value.string_value for kv in span.attributes if kv.value.HasField("string_value"))
    texts += [
        json.dumps({"jane.doe@mailbox.org": "key holds it", "n": 4155550132}),  # hits outside strings
        '{"a": "call +1 (415) 555-0132" ',  # looks like JSON, does not parse
        '["x", "mail jane.doe@mailbox.org", {"card": "4111 1111 1111 1111"}]',
        '{"note": "said \\"jane.doe@mailbox.org\\""}',  # an escaped quote: parsed
    ]
    return texts


@pytest.mark.parametrize(
    "config", [{}, {"parse_json": False}, {"max_depth": 1}], ids=["default", "no-json", "shallow"]
)
def test_redaction_is_the_same_with_the_c_mask_step_and_without(config: dict[str, object]) -> None:
    proc = _processor(**config)
    redactor = proc.redactor
    masker = redactor._masker
    assert masker is not None
    changed = 0
    for text in _texts():
        with_c, without_c = Tally(), Tally()
        got = redactor.redact_text(text, with_c)
        redactor._masker = None
        try:
            expected = redactor.redact_text(text, without_c)
        finally:
            redactor._masker = masker
        assert (got, with_c.by_type) == (expected, without_c.by_type), text
        changed += got is not None
    assert changed > 1000


def test_the_c_mask_step_is_used_only_where_every_detector_masks() -> None:
    assert _processor().redactor._masker is not None
    assert _processor(actions={"EMAIL": "hash"}, hash_key="k" * 32).redactor._masker is None
    assert _processor(default_action="drop").redactor._masker is None
    detectors = _processor().redactor.detectors
    assert Redactor(detectors, ner=lambda text: [])._masker is None
    assert Redactor(detectors)._masker is not None
