"""GenAI incident suite for the ``anomaly`` processor.

A seeded "normal day" of model-call spans for a few (service, provider, model,
operation) series, with a diurnal traffic and latency swing, 1 % background errors and
lognormal token counts, plus four injected incidents, each on one series:

- ``latency_x5``: one model answers five times slower for 10 minutes;
- ``error_burst``: 30 % of calls fail for 2 minutes;
- ``token_explosion``: a looping agent calls three times as often with a context that
  grows from 3x to 15x the usual input tokens, for 5 minutes;
- ``price_change``: cost per call triples from one moment on (a new price sheet).

Services, models, resources and instrumentation scopes come from ``bench.workload``.
``gen_ai.usage.cost`` is written here as the ``genai_cost`` processor would upstream
(synthetic prices), so the price change is a change in cost per token.

Report: per incident, the event-time delay to the first flag of the expected kind on
the right series; on the clean parts (each series outside [incident start, incident
end + settle]) the flagged spans per series-hour.

``python -m bench.incidents`` runs the default processor in-process on a 24 h day;
``--throughput`` times the processor on ``bench.workload`` requests against the raw
``ParseFromString`` rate.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from bench import workload as wl
from otel_receiver.attributes import get, get_str
from semconv import attributes as sc

DAY_START_NS = 1_767_571_200 * 10**9  # 2026-01-05T00:00:00Z, a Monday
S = 10**9
SETTLE_S = 900.0  # after an incident ends, this long is neither incident nor clean


@dataclass(frozen=True)
class SeriesSpec:
    service: wl.Service
    model: wl.Model
    rate: float  # calls per second at the daily mean
    input_tokens: float  # median input tokens per call
    output_tokens: float  # median output tokens per call
    usd_per_mtok_in: float
    usd_per_mtok_out: float

    @property
    def key(self) -> tuple[str, str, str, str]:
        m = self.model
        return (self.service.name, m.provider, m.request_model, m.operation)


@dataclass(frozen=True)
class Incident:
    name: str
    kind: str  # the anomaly kind that should flag it
    series: int
    start_s: float  # seconds after the start of the day
    duration_s: float

    def active(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.start_s + self.duration_s


@dataclass
class Day:
    requests: list[ExportTraceServiceRequest]
    series: list[SeriesSpec]
    incidents: list[Incident]
    hours: float
    start_ns: int = DAY_START_NS


@dataclass
class IncidentResult:
    incident: Incident
    delay_s: float | None  # None: never flagged with the expected kind
    flagged_spans: int  # spans of the series flagged (any kind) during the incident
    kinds: list[str]


@dataclass
class Report:
    incidents: list[IncidentResult]
    false_flags: int
    clean_series_hours: float
    spans: int
    false_flags_by_series: dict[str, int] = field(default_factory=dict)

    @property
    def false_flags_per_series_hour(self) -> float:
        return self.false_flags / self.clean_series_hours if self.clean_series_hours else 0.0


def _service(name: str) -> wl.Service:
    return next(s for s, _ in wl.SERVICES if s.name == name)


def _chat_model(provider: str, request_model: str) -> wl.Model:
    return next(m for m, _ in wl.CHAT_MODELS[provider] if m.request_model == request_model)


def default_series() -> list[SeriesSpec]:
    support, review = _service("support-agent"), _service("code-review-bot")
    return [
        SeriesSpec(support, _chat_model(wl.PROVIDER_OPENAI, "gpt-4o"), 0.5, 900, 250, 2.5, 10.0),
        SeriesSpec(support, _chat_model(wl.PROVIDER_OPENAI, "gpt-4o-mini"), 0.8, 700, 200, 0.15, 0.6),
        SeriesSpec(support, _chat_model(wl.PROVIDER_ANTHROPIC, "claude-3-5-sonnet-20241022"), 0.3, 1200,
                   300, 3.0, 15.0),
        SeriesSpec(review, _chat_model(wl.PROVIDER_ANTHROPIC, "claude-3-5-sonnet-20241022"), 0.4, 4000,
                   600, 3.0, 15.0),
        SeriesSpec(review, _chat_model(wl.PROVIDER_OPENAI, "gpt-4o"), 0.3, 3000, 500, 2.5, 10.0),
        SeriesSpec(review, _chat_model(wl.PROVIDER_MISTRAL, "mistral-large-latest"), 0.2, 2500, 400,
                   2.0, 6.0),
    ]


def default_incidents(hours: float) -> list[Incident]:
    """The four incidents spread over the day (positions scale with its length)."""
    h = hours * 3600.0
    return [
        Incident("latency_x5", sc.ANOMALY_KIND_LATENCY, 0, 0.25 * h, 600.0),
        Incident("error_burst", sc.ANOMALY_KIND_ERROR_RATE, 1, 0.42 * h, 120.0),
        Incident("token_explosion", sc.ANOMALY_KIND_TOKENS, 3, 0.60 * h, 300.0),
        Incident("price_change", sc.ANOMALY_KIND_COST, 4, 0.78 * h, 0.0),
    ]


def _diurnal(t_s: float) -> float:
    """Traffic multiplier over the day: quiet at night, busy in the afternoon."""
    return 1.0 + 0.5 * math.sin(2 * math.pi * (t_s / 86400.0 - 0.375))


def generate(
    seed: int = 7,
    hours: float = 24.0,
    with_incidents: bool = True,
    spans_per_request: int = 100,
    series: Sequence[SeriesSpec] | None = None,
    start_ns: int = DAY_START_NS,
) -> Day:
    rng = random.Random(seed)
    specs = list(series) if series is not None else default_series()
    incidents = default_incidents(hours) if with_incidents else []
    resources = {s.service.name: wl._resource(s.service, rng) for s in specs}
    end_s = hours * 3600.0
    calls: list[tuple[int, int, Span]] = []  # (end time, series index, span)
    for index, spec in enumerate(specs):
        mine = [inc for inc in incidents if inc.series == index]
        t = 0.0
        loop_iteration = 0
        while True:
            rate = spec.rate * _diurnal(t)
            active = {inc.name for inc in mine if inc.active(t)}
            if "token_explosion" in active:
                rate *= 3.0
            t += rng.expovariate(rate)
            if t >= end_s:
                break
            active = {inc.name for inc in mine if inc.active(t)}
            changed = any(inc.name == "price_change" and t >= inc.start_s for inc in mine)
            input_tokens = int(spec.input_tokens * math.exp(rng.gauss(0.0, 0.35)))
            output_tokens = max(1, int(spec.output_tokens * math.exp(rng.gauss(0.0, 0.4))))
            if "token_explosion" in active:
                inc = next(i for i in mine if i.name == "token_explosion")
                growth = 3.0 + 12.0 * (t - inc.start_s) / inc.duration_s
                input_tokens = int(input_tokens * growth)
                loop_iteration += 1
            latency = 0.35 + output_tokens / spec.model.tokens_per_s + input_tokens / 20000.0
            latency *= math.exp(rng.gauss(0.0, 0.25)) * (1.0 + 0.1 * math.sin(2 * math.pi * t / 86400.0))
            if "latency_x5" in active:
                latency *= 5.0
            error_p = 0.30 if "error_burst" in active else 0.01
            failed = rng.random() < error_p
            price = 3.0 if changed else 1.0
            cost = price * (input_tokens * spec.usd_per_mtok_in + output_tokens * spec.usd_per_mtok_out) / 1e6
            span = _span(rng, spec, start_ns + int(t * S), latency, input_tokens, output_tokens, cost, failed)
            calls.append((span.end_time_unix_nano, index, span))
    calls.sort(key=lambda c: c[0])
    requests = []
    for i in range(0, len(calls), spans_per_request):
        requests.append(_request(calls[i : i + spans_per_request], specs, resources))
    return Day(requests, specs, incidents, hours, start_ns)


def _span(rng: random.Random, spec: SeriesSpec, start: int, latency_s: float, input_tokens: int,
          output_tokens: int, cost: float, failed: bool) -> Span:
    m = spec.model
    span = Span()
    span.trace_id = rng.getrandbits(128).to_bytes(16, "big")
    span.span_id = rng.getrandbits(64).to_bytes(8, "big")
    span.name = f"{m.operation} {m.request_model}"
    span.kind = Span.SPAN_KIND_CLIENT
    span.start_time_unix_nano = start
    span.end_time_unix_nano = start + int(latency_s * S)
    attrs = span.attributes
    for key, text in (
        (sc.GEN_AI_OPERATION_NAME, m.operation),
        (sc.GEN_AI_PROVIDER_NAME, m.provider),
        (sc.GEN_AI_REQUEST_MODEL, m.request_model),
        (sc.GEN_AI_RESPONSE_MODEL, m.response_model),
        (wl.SERVER_ADDRESS, m.server),
    ):
        kv = attrs.add()
        kv.key, kv.value.string_value = key, text
    if failed:
        error_type, message = rng.choice(wl.ERRORS[m.provider])
        kv = attrs.add()
        kv.key, kv.value.string_value = sc.ERROR_TYPE, error_type
        span.status.code = Status.STATUS_CODE_ERROR
        span.status.message = message
        return span
    for key, number in ((sc.GEN_AI_USAGE_INPUT_TOKENS, input_tokens), (sc.GEN_AI_USAGE_OUTPUT_TOKENS,
                                                                       output_tokens)):
        kv = attrs.add()
        kv.key, kv.value.int_value = key, number
    kv = attrs.add()
    kv.key, kv.value.double_value = sc.GEN_AI_USAGE_COST, cost
    return span


def _request(calls: Iterable[tuple[int, int, Span]], specs: Sequence[SeriesSpec],
             resources: dict[str, Any]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    scopes: dict[tuple[str, str], Any] = {}
    by_service: dict[str, Any] = {}
    for _, index, span in calls:
        spec = specs[index]
        rs = by_service.get(spec.service.name)
        if rs is None:
            rs = by_service[spec.service.name] = request.resource_spans.add()
            rs.resource.CopyFrom(resources[spec.service.name])
        scope_key = (spec.service.name, spec.model.provider)
        ss = scopes.get(scope_key)
        if ss is None:
            ss = scopes[scope_key] = rs.scope_spans.add()
            ss.scope.name, ss.scope.version = wl.PROVIDER_SCOPES[spec.model.provider]
        ss.spans.add().CopyFrom(span)
    return request


def evaluate(day: Day, processed: Iterable[ExportTraceServiceRequest], settle_s: float = SETTLE_S) -> Report:
    """Score processed requests (with ``anomaly.*`` set) against the day's incidents."""
    index_of = {spec.key: i for i, spec in enumerate(day.series)}
    first_flag: dict[int, float] = {}
    kinds_seen: dict[int, set[str]] = {i: set() for i in range(len(day.incidents))}
    flagged_in: dict[int, int] = dict.fromkeys(range(len(day.incidents)), 0)
    false_by_series = dict.fromkeys(range(len(day.series)), 0)
    spans = 0
    for request in processed:
        for rs in request.resource_spans:
            service = get_str(rs.resource.attributes, sc.SERVICE_NAME) or ""
            for ss in rs.scope_spans:
                for span in ss.spans:
                    spans += 1
                    flag = get(span.attributes, sc.ANOMALY_FLAGGED)
                    if flag is None or not flag.bool_value:
                        continue
                    attrs = span.attributes
                    key = (service, get_str(attrs, sc.GEN_AI_PROVIDER_NAME) or "",
                           get_str(attrs, sc.GEN_AI_REQUEST_MODEL) or "",
                           get_str(attrs, sc.GEN_AI_OPERATION_NAME) or "")
                    series = index_of.get(key)
                    if series is None:
                        continue
                    kinds_value = get(attrs, sc.ANOMALY_KINDS)
                    kinds = [v.string_value for v in kinds_value.array_value.values] if kinds_value else []
                    t_s = (span.end_time_unix_nano - day.start_ns) / S
                    in_incident = False
                    for i, inc in enumerate(day.incidents):
                        if inc.series != series:
                            continue
                        if inc.start_s <= t_s < inc.start_s + inc.duration_s + settle_s:
                            in_incident = True
                            kinds_seen[i].update(kinds)
                            if t_s < inc.start_s + max(inc.duration_s, settle_s):
                                flagged_in[i] += 1
                            if inc.kind in kinds and i not in first_flag:
                                first_flag[i] = t_s - inc.start_s
                    if not in_incident:
                        false_by_series[series] += 1
    clean_hours = 0.0
    for series in range(len(day.series)):
        excluded = sum(inc.duration_s + settle_s for inc in day.incidents if inc.series == series)
        clean_hours += (day.hours * 3600.0 - excluded) / 3600.0
    return Report(
        incidents=[
            IncidentResult(inc, first_flag.get(i), flagged_in[i], sorted(kinds_seen[i]))
            for i, inc in enumerate(day.incidents)
        ],
        false_flags=sum(false_by_series.values()),
        clean_series_hours=clean_hours,
        spans=spans,
        false_flags_by_series={"/".join(day.series[i].key): n for i, n in false_by_series.items()},
    )


def run_in_process(day: Day, config: dict[str, Any] | None = None) -> tuple[Report, float]:
    """Run a fresh default ``anomaly`` processor over the day; returns the report and spans/s."""
    from otel_receiver.component import ComponentSettings, RequestContext
    from otel_receiver.telemetry import SelfTelemetry
    from processors.anomaly import AnomalyConfig, AnomalyProcessor

    settings = ComponentSettings("anomaly", SelfTelemetry(), logging.getLogger("bench.anomaly"))
    processor = AnomalyProcessor(AnomalyConfig(**(config or {})), settings)
    context = RequestContext()
    t0 = time.perf_counter()
    for request in day.requests:
        processor.process_traces(request, context)
    elapsed = time.perf_counter() - t0
    asyncio.run(processor.shutdown())
    report = evaluate(day, day.requests)
    return report, report.spans / elapsed


def format_report(report: Report) -> str:
    lines = ["| incident | expected kind | detection delay (event time) | flagged spans | kinds seen |",
             "|---|---|---|---|---|"]
    for r in report.incidents:
        delay = "missed" if r.delay_s is None else f"{r.delay_s:.1f} s"
        lines.append(f"| {r.incident.name} | {r.incident.kind} | {delay} | {r.flagged_spans} | "
                     f"{', '.join(r.kinds) or '-'} |")
    lines.append("")
    lines.append(
        f"clean parts: {report.false_flags} false flags in {report.clean_series_hours:.1f} series-hours "
        f"= {report.false_flags_per_series_hour:.3f} per series-hour ({report.spans:,} spans)"
    )
    return "\n".join(lines)


def throughput(seconds: float = 3.0, spans_per_request: int = 100) -> dict[str, float]:
    """Spans per CPU-second of ``ParseFromString`` alone and of parse + anomaly processor,
    on ``bench.workload`` requests. Process CPU time, not wall time, so that other load on
    shared cores distorts the ratio less; best of three rounds per case."""
    from otel_receiver.component import ComponentSettings, RequestContext
    from otel_receiver.telemetry import SelfTelemetry
    from processors.anomaly import AnomalyConfig, AnomalyProcessor

    bodies = [r.SerializeToString() for r in wl.generate_trace_requests(200, spans_per_request, seed=11,
                                                                        start_time_ns=DAY_START_NS)]
    settings = ComponentSettings("anomaly", SelfTelemetry(), logging.getLogger("bench.anomaly"))
    processor = AnomalyProcessor(AnomalyConfig(), settings)
    context = RequestContext()

    def rate(with_processor: bool) -> float:
        best = 0.0
        for _ in range(3):
            n, t0 = 0, time.process_time()
            while time.process_time() - t0 < seconds / 3:
                for body in bodies:
                    request = ExportTraceServiceRequest.FromString(body)
                    if with_processor:
                        processor.process_traces(request, context)
                n += len(bodies)
            best = max(best, n * spans_per_request / (time.process_time() - t0))
        return best

    raw = rate(False)
    with_processor = rate(True)
    processor_only = 1.0 / (1.0 / with_processor - 1.0 / raw) if with_processor < raw else math.inf
    return {
        "parse_spans_per_cpu_s": raw,
        "parse_plus_anomaly_spans_per_cpu_s": with_processor,
        "anomaly_only_spans_per_cpu_s": processor_only,
        "anomaly_cost_percent_of_parse": 100.0 * raw / processor_only,
    }


def summarise_seeds(seeds: Iterable[int], hours: float) -> str:
    """Delay per incident (min / median / max over seeds) and pooled false flags."""
    delays: dict[str, list[float | None]] = {}
    false_flags, clean_hours = 0, 0.0
    for seed in seeds:
        report, _ = run_in_process(generate(seed, hours))
        for r in report.incidents:
            delays.setdefault(r.incident.name, []).append(r.delay_s)
        false_flags += report.false_flags
        clean_hours += report.clean_series_hours
    lines = ["| incident | detected | min delay | median delay | max delay |", "|---|---|---|---|---|"]
    for name, values in delays.items():
        found = sorted(v for v in values if v is not None)
        if found:
            median = found[len(found) // 2]
            lines.append(f"| {name} | {len(found)}/{len(values)} | {found[0]:.1f} s | {median:.1f} s | "
                         f"{found[-1]:.1f} s |")
        else:
            lines.append(f"| {name} | 0/{len(values)} | - | - | - |")
    lines.append("")
    lines.append(f"clean parts: {false_flags} false flags in {clean_hours:.1f} series-hours = "
                 f"{false_flags / clean_hours:.3f} per series-hour")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="GenAI incident suite for the anomaly processor")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--throughput", action="store_true", help="time the processor vs raw parsing")
    parser.add_argument("--seeds", type=int, default=0, help="summarise delays over seeds 1..N instead")
    args = parser.parse_args(argv)
    if args.throughput:
        for k, v in throughput().items():
            print(f"{k}: {v:,.1f}")
        return 0
    if args.seeds:
        print(summarise_seeds(range(1, args.seeds + 1), args.hours))
        return 0
    day = generate(args.seed, args.hours)
    report, rate = run_in_process(day)
    print(format_report(report))
    print(f"processor (in-process, this stream): {rate:,.0f} spans/s")
    for name, n in report.false_flags_by_series.items():
        print(f"  false flags {n:4d}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
