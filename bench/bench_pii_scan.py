"""pii_redaction's request prefilter: the C pass (``_prefilter.c``) against one RE2 regex.

Both scanners get the default config's anchors and key rules and scan the same serialized
requests (``bench.workload``, 100 spans of ~1.5 kB). The first pass over requests never
seen is reported apart from the best of the later passes: RE2 builds its DFA states
lazily, on content it has not seen, and the C pass learns the keys it has not decided.
Both scanners are first warmed on requests of another seed, as a running receiver is.

    .venv/bin/python -m bench.bench_pii_scan [--requests 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from bench.workload import generate_trace_requests
from otel_receiver.component import ComponentSettings
from otel_receiver.telemetry import SelfTelemetry
from processors.pii_redaction import PiiRedactionConfig, factory
from processors.pii_redaction.engine import RequestScanner

START_NS = 1_763_700_000_000_000_000


def passes(scanner: Any, bodies: list[bytes], repeat: int) -> tuple[float, float]:
    """(first pass, best later pass) in microseconds per span."""
    spans = 100 * len(bodies)
    timings = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        for body in bodies:
            scanner.matches(body)
        timings.append((time.perf_counter() - start) / spans * 1e6)
    return timings[0], min(timings[1:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fractions", default="0,0.1,1")
    args = ap.parse_args(argv)
    settings = ComponentSettings("pii_redaction", SelfTelemetry(), logging.getLogger("bench"))
    processor = factory.create(PiiRedactionConfig(), settings)
    scanners = {
        "RE2, all anchors": RequestScanner(processor.redactor.anchors()),
        "C prefilter + RE2 in its windows": processor.scanner,
    }
    warm = [r.SerializeToString() for r in generate_trace_requests(100, 100, 8, 0.1, START_NS)]
    for scanner in scanners.values():
        for body in warm:
            scanner.matches(body)
    print("| PII spans | scanner | first pass, us/span | later passes, us/span |")
    print("| --- | --- | --- | --- |")
    for fraction in (float(f) for f in args.fractions.split(",")):
        bodies = [
            r.SerializeToString() for r in generate_trace_requests(args.requests, 100, 7, fraction, START_NS)
        ]
        for name, scanner in scanners.items():
            first, later = passes(scanner, bodies, args.repeat)
            print(f"| {fraction:.0%} | {name} | {first:.2f} | {later:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
