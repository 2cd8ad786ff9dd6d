"""Benchmark of the ``pii_redaction`` processor against a raw decode and a naive regex.

For 0%, 10% and 100% of model-call spans carrying PII (``bench.workload``, 100 spans per
request, prompts of 1-2 KB in ``gen_ai.input.messages``), it measures in one run:

* ``raw``: ``ExportTraceServiceRequest.ParseFromString`` of the request bytes (the floor
  of any receive path);
* ``pii_redaction``: decode + ``process_traces`` with the default config;
* ``naive re``: decode + one combined Python ``re`` pattern applied with ``sub`` to every
  string attribute, event and link attribute (no validation: what a quick hand-written
  redactor does).

Rates are spans per second of *process CPU time* (``time.process_time``), best of
``--repeat`` runs, so that other load on a shared machine distorts them less than wall time.

    .venv/bin/python -m bench.bench_pii [--requests 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import time
from collections.abc import Callable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.workload import generate_trace_requests
from otel_receiver.component import ComponentSettings, RequestContext
from otel_receiver.telemetry import SelfTelemetry
from processors.pii_redaction import PiiRedactionConfig, factory

NAIVE = re.compile(
    "|".join(
        [
            r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}",
            r"\b(?:\d[ \-]?){13,19}\b",
            r"\b\d{3}-\d{2}-\d{4}\b",
            r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b",
            r"(?:\+\d{1,3}[ .\-]?)?\(?\d{2,4}\)?[ .\-]?\d{3,4}[ .\-]?\d{3,4}",
            r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
            r"\b(?:sk-[A-Za-z0-9_\-]{20,}|AKIA[A-Z0-9]{16}|gh[pousr]_[A-Za-z0-9]{36,}|xox[abpr]-[A-Za-z0-9\-]+"
            r"|glpat-[A-Za-z0-9_\-]{20,}|AIza[0-9A-Za-z_\-]{35}|eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*)",
            r"-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?-----END[A-Z ]*PRIVATE KEY-----",
            r"(?i:bearer)\s+[A-Za-z0-9\-._~+/]+=*",
        ]
    )
)


def naive_redact(batch: ExportTraceServiceRequest) -> None:
    sub = NAIVE.sub

    def attrs(kvs: object) -> None:
        for kv in kvs:  # type: ignore[attr-defined]
            v = kv.value
            if v.WhichOneof("value") == "string_value":
                new = sub("[REDACTED]", v.string_value)
                if new != v.string_value:
                    v.string_value = new

    for rs in batch.resource_spans:
        attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                attrs(span.attributes)
                for ev in span.events:
                    attrs(ev.attributes)
                for link in span.links:
                    attrs(link.attributes)


Work = Callable[[ExportTraceServiceRequest], object]


def measure(bodies: list[bytes], make_work: Callable[[], Work], repeat: int) -> float:
    """Best spans/s of CPU time over ``repeat`` passes of decode + work, each pass with a
    fresh ``make_work()`` (so no cache carries values over from a previous pass)."""
    spans = 0
    for body in bodies:
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        spans += sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    best = float("inf")
    for _ in range(repeat):
        work = make_work()
        start = time.process_time()
        for body in bodies:
            req = ExportTraceServiceRequest()
            req.ParseFromString(body)
            work(req)
        best = min(best, time.process_time() - start)
    return spans / best if best > 0 else float("inf")


def processor_factory(warm_bodies: list[bytes]) -> Callable[[], Work]:
    """A fresh processor per pass, as a running receiver has it: started (its own warm-up)
    and past a few requests of *other* traffic (``warm_bodies``, another seed, so other
    people's values), so RE2's lazily built DFA states exist but the validation cache holds
    none of the measured values."""

    def make() -> Work:
        proc = factory.create(
            PiiRedactionConfig(),
            ComponentSettings("pii_redaction", SelfTelemetry(), logging.getLogger("bench")),
        )
        ctx = RequestContext()
        asyncio.run(proc.start())
        for body in warm_bodies:
            proc.process(ExportTraceServiceRequest.FromString(body), ctx)
        return lambda req: proc.process(req, ctx)

    return make


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20, help="requests of 100 spans per PII fraction")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fractions", default="0,0.1,1")
    args = ap.parse_args(argv)

    fractions = [float(x) for x in args.fractions.split(",")]
    print(f"{'variant':<28}" + "".join(f"{f'{f:.0%} PII':>22}" for f in fractions))
    names = ["raw decode", "pii_redaction", "naive combined re"]
    results: dict[str, list[float]] = {name: [] for name in names}
    t0 = 1_763_700_000_000_000_000
    for f in fractions:
        bodies = [r.SerializeToString() for r in generate_trace_requests(args.requests, 100, 7, f, t0)]
        warm = [r.SerializeToString() for r in generate_trace_requests(5, 100, 8, f, t0)]
        makers: dict[str, Callable[[], Work]] = {
            "raw decode": lambda: lambda r: None,
            "pii_redaction": processor_factory(warm),
            "naive combined re": lambda: naive_redact,
        }
        for name in names:
            results[name].append(measure(bodies, makers[name], args.repeat))
    raw = results["raw decode"]
    for name, rates in results.items():
        cells = "".join(f"{rate:>12,.0f} ({rate / raw[i]:>5.1%})" for i, rate in enumerate(rates))
        print(f"{name:<28}{cells}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
