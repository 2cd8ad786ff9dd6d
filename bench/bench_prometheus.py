"""Cost of the Prometheus exporter's span-derived metrics against the receive path.

Everything runs in one process on the same requests, case after case in interleaved
rounds (best round kept), so ratios hold even on a loaded machine:

- ``parse``: ``ExportTraceServiceRequest.ParseFromString`` (the raw receive baseline);
- ``parse + span metrics``: plus ``aggregate_spans`` + ``merge``, all that
  ``PrometheusExporter.export`` does with a traces batch;
- ``parse + processors``: parse, then the default traces pipeline's processors
  (genai_normalize, pii_redaction, genai_cost, anomaly), when they are installed;
- ``parse + processors + span metrics``.

Messages are parsed afresh in every case, as the receiver does: upb creates the Python
wrappers of spans and attributes lazily, and walking them is most of the cost.
The requests come from ``bench.workload`` (realistic GenAI agent traces).

Then the C accumulator's ``add`` alone per span (the walk and the sums, in this thread),
over the first 10 requests cycled (in cache, as in the receiver) and over all of them.

Run: ``python -m bench.bench_prometheus [--requests 20] [--spans 100] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Callable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.workload import generate_trace_requests
from exporters.prometheus import PrometheusExporter, factory, spanmetrics
from exporters.prometheus.spanmetrics import aggregate_spans
from otel_receiver.component import ComponentSettings, Processor, RequestContext
from otel_receiver.registry import REGISTRY
from otel_receiver.telemetry import SelfTelemetry

OPENMETRICS = "application/openmetrics-text;version=1.0.0"
DEFAULT_TRACE_PROCESSORS = ("genai_normalize", "pii_redaction", "genai_cost", "anomaly")


def _processors(telemetry: SelfTelemetry) -> list[Processor]:
    procs: list[Processor] = []
    for name in DEFAULT_TRACE_PROCESSORS:
        try:
            f = REGISTRY.factory("processors", name)
        except (LookupError, ImportError):
            continue
        proc = f.create(f.config_model(), ComponentSettings(name, telemetry, logging.getLogger(name)))
        asyncio.run(proc.start())
        procs.append(proc)
    return procs


def _add_us_per_span(bodies: list[bytes], spans: int, rounds: int) -> float:
    """Best round of ``Accumulator.add`` over ~40,000 spans of ``bodies`` cycled (the
    receiver drains about once a second: here after each round, untimed)."""
    accumulator = spanmetrics._accumulator()
    cycles = max(1, 40_000 // (len(bodies) * spans))
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(cycles):
            for body in bodies:
                accumulator.add((body,), "", True, False)
        best = min(best, time.perf_counter() - start)
        accumulator.drain()
    return best / (cycles * len(bodies) * spans) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Prometheus exporter span-metrics cost")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--spans", type=int, default=100, help="spans per request")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)

    telemetry = SelfTelemetry()
    settings = ComponentSettings("prometheus", telemetry, logging.getLogger("bench"))
    bodies = [r.SerializeToString() for r in generate_trace_requests(args.requests, args.spans, seed=7)]
    spans = args.requests * args.spans
    exporter = factory.create(factory.config_model(endpoint="127.0.0.1:0"), settings)
    assert isinstance(exporter, PrometheusExporter)
    procs = _processors(telemetry)
    ctx = RequestContext()

    def run(with_procs: bool, with_metrics: bool) -> None:
        for body in bodies:
            req = ExportTraceServiceRequest()
            req.ParseFromString(body)
            if with_procs:
                for p in procs:
                    out = p.process(req, ctx)
                    assert isinstance(out, ExportTraceServiceRequest)
                    req = out
            if with_metrics:
                exporter.spans.merge(aggregate_spans(req, ctx, "auto"))

    cases: dict[str, Callable[[], None]] = {
        "parse": lambda: run(False, False),
        "parse + span metrics": lambda: run(False, True),
    }
    if procs:
        cases["parse + processors"] = lambda: run(True, False)
        cases["parse + processors + span metrics"] = lambda: run(True, True)
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(args.rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    per_span = {name: t / spans for name, t in best.items()}

    size = sum(map(len, bodies)) / spans
    print(f"workload: {args.requests} requests x {args.spans} spans, {size:.0f} B/span;"
          f" processors: {', '.join(type(p).__name__ for p in procs) or 'none installed'}")  # fmt: skip
    for name, t in per_span.items():
        print(f"{name:36s} {1 / t:12,.0f} spans/s  {t * 1e6:7.2f} us/span")
    metrics = per_span["parse + span metrics"] - per_span["parse"]
    print(f"span metrics add {metrics * 1e6:.2f} us/span = {metrics / per_span['parse']:.0%} of parse")
    if procs:
        added = per_span["parse + processors + span metrics"] - per_span["parse + processors"]
        print(
            f"in the default pipeline they add {added * 1e6:.2f} us/span = "
            f"{added / per_span['parse + processors']:.0%} of parse + processors"
        )
    if spanmetrics._spanmetrics is not None:
        for cycled in (bodies[:10], bodies):
            print(f"Accumulator.add over {len(cycled)} requests cycled: "
                  f"{_add_us_per_span(cycled, args.spans, args.rounds):.3f} us/span")  # fmt: skip
    for accept, label in (("", "text 0.0.4"), (OPENMETRICS, "OpenMetrics")):
        start = time.perf_counter()
        body = exporter.render(accept, False)[0]
        print(f"scrape {label}: {len(body) / 1024:.0f} KiB in {(time.perf_counter() - start) * 1e3:.0f} ms "
              f"({exporter.spans.series_count()} span series + self-metrics)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
