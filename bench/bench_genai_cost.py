"""Cost of the genai_cost (and genai_normalize) processors against the raw receive rate.

One process, the same serialized requests from ``bench.workload`` (realistic GenAI agent
traces: agent runs over chat / embeddings / tool spans across six providers), case after
case in interleaved rounds, best round kept, so the ratios hold on a loaded machine:

- ``parse``: ``ExportTraceServiceRequest.ParseFromString`` of every body (the raw baseline:
  what the receiver must do anyway);
- ``parse + genai_cost``: plus the processor on the decoded request;
- ``parse + genai_normalize + genai_cost``: the default pipeline's order;
- the same two on a *legacy* copy of the workload (``gen_ai.system``,
  ``gen_ai.usage.prompt_tokens`` / ``completion_tokens``, OpenLLMetry cache names), where
  genai_normalize really renames and genai_cost reads the names it renamed.

Messages are parsed afresh in every case, as the receiver does; upb creates the Python
wrappers of spans and attributes lazily, so the first component that walks the attributes
pays for creating them — that is included in the processor's cost here (pessimistic: in
the full pipeline genai_normalize or pii_redaction pays it first).

Run: ``python -m bench.bench_genai_cost [--requests 20] [--spans 100] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.workload import generate_trace_requests
from otel_receiver.component import ComponentSettings, Processor, RequestContext
from otel_receiver.telemetry import SelfTelemetry
from processors.genai_cost import factory as cost_factory
from processors.genai_normalize import factory as normalize_factory
from semconv import attributes as a

# current name -> the old name an OpenLLMetry-era emitter writes
LEGACY_NAMES = {
    a.GEN_AI_PROVIDER_NAME: a.GEN_AI_SYSTEM,
    a.GEN_AI_USAGE_INPUT_TOKENS: a.GEN_AI_USAGE_PROMPT_TOKENS,
    a.GEN_AI_USAGE_OUTPUT_TOKENS: a.GEN_AI_USAGE_COMPLETION_TOKENS,
    a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: a.TRACELOOP_CACHE_READ_INPUT_TOKENS,
    a.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: a.TRACELOOP_CACHE_CREATION_INPUT_TOKENS,
    a.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: a.TRACELOOP_REASONING_TOKENS,
}


def legacy_copy(req: ExportTraceServiceRequest) -> ExportTraceServiceRequest:
    out = ExportTraceServiceRequest()
    out.CopyFrom(req)
    for rs in out.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                for kv in span.attributes:
                    old = LEGACY_NAMES.get(kv.key)
                    if old is not None:
                        kv.key = old
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="genai_cost processor cost vs raw decode")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--spans", type=int, default=100, help="spans per request")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)

    telemetry = SelfTelemetry()
    cost = cost_factory.create(
        cost_factory.config_model(), ComponentSettings("genai_cost", telemetry, logging.getLogger("bench"))
    )
    normalize = normalize_factory.create(
        normalize_factory.config_model(),
        ComponentSettings("genai_normalize", telemetry, logging.getLogger("bench")),
    )
    requests = generate_trace_requests(args.requests, args.spans, seed=11)
    bodies = [r.SerializeToString() for r in requests]
    legacy_bodies = [legacy_copy(r).SerializeToString() for r in requests]
    spans = args.requests * args.spans
    ctx = RequestContext()

    def scan_keys(source: list[bytes]) -> None:
        """The floor of any processor that reads attributes: one pass over every key."""
        for body in source:
            req = ExportTraceServiceRequest()
            req.ParseFromString(body)
            for rs in req.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        for kv in span.attributes:
                            kv.key  # noqa: B018

    def run(source: list[bytes], procs: tuple[Processor, ...]) -> None:
        for body in source:
            req = ExportTraceServiceRequest()
            req.ParseFromString(body)
            for p in procs:
                out = p.process(req, ctx)
                assert isinstance(out, ExportTraceServiceRequest)
                req = out

    cases: dict[str, Callable[[], None]] = {
        "parse": lambda: run(bodies, ()),
        "parse + read every attribute key (floor)": lambda: scan_keys(bodies),
        "parse + genai_cost": lambda: run(bodies, (cost,)),
        "parse + genai_normalize + genai_cost": lambda: run(bodies, (normalize, cost)),
        "legacy: parse": lambda: run(legacy_bodies, ()),
        "legacy: parse + genai_cost": lambda: run(legacy_bodies, (cost,)),
        "legacy: parse + genai_normalize + genai_cost": lambda: run(legacy_bodies, (normalize, cost)),
    }
    run(bodies, (normalize, cost))  # warm the price cache, as a running receiver has
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(args.rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    per_span = {name: t / spans for name, t in best.items()}

    priced = 0
    for body in bodies:
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        cost.process(req, ctx)
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                priced += sum(
                    1 for s in ss.spans if any(kv.key == a.GEN_AI_USAGE_COST for kv in s.attributes)
                )
    size = sum(map(len, bodies)) / spans
    print(
        f"workload: {args.requests} requests x {args.spans} spans, {size:.0f} B/span, "
        f"{priced / spans:.0%} priced"
    )
    for name, t in per_span.items():
        print(f"{name:46s} {1 / t:12,.0f} spans/s  {t * 1e6:7.2f} us/span")
    floor = per_span["parse + read every attribute key (floor)"] - per_span["parse"]
    print(
        f"reading every attribute key once costs {floor * 1e6:.2f} us/span = "
        f"{floor / per_span['parse']:.0%} of parse"
    )
    for prefix in ("", "legacy: "):
        base = per_span[f"{prefix}parse"]
        alone = per_span[f"{prefix}parse + genai_cost"] - base
        both = per_span[f"{prefix}parse + genai_normalize + genai_cost"] - base
        print(
            f"{prefix or 'current names: '}genai_cost adds {alone * 1e6:.2f} us/span = "
            f"{alone / base:.1%} of parse; "
            f"genai_normalize + genai_cost add {both * 1e6:.2f} us/span = {both / base:.1%}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
