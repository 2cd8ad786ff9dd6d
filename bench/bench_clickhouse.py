"""ClickHouse exporter alone: sustained spans/s into an embedded chDB store.

``python -m bench.bench_clickhouse [--batches 10] [--batch-spans 10000] [--consumers 2]``

Realistic GenAI trace requests from ``bench.workload`` (100 spans each) are merged
into batches of ``--batch-spans`` (what the exporter's queue hands over with its
default ``min_size``: 10,000) before timing; the timed part is ``export`` itself:
serialization, the insert, ClickHouse's protobuf decoding, the materialized views
(rows, trace-id lookup, genai_calls) and the MergeTree writes. ``--consumers``
exports run concurrently, as the queue's consumers do. Reported: wall-clock spans/s
and spans per CPU-second of the whole process (chDB runs in-process, so CPU time
covers the engine too and is the figure least disturbed by other load).

``--signal logs`` measures log records the same way (``bench.workload``'s GenAI log
requests). Metrics are not offered: the workload's metrics generator fails on some
seeds (an empty histogram), reported to its owner.

``--sustained SECONDS`` measures the shipping setup instead: the exporter behind its
real ``ExporterQueue`` with its default queue config (flush at 10,000 spans or 1 s, a
backlog merged up to ``max_size``, two consumers), fed 100-span requests as fast as the
queue admits them for that long (``--signal mixed``: traces and logs requests in
turn, as one exporter taking both gets them); reported are exported spans/s over the run (until the
queue is drained) and the average spans per insert the queue chose. Each request comes
with the bytes a client sent, as the receiver hands it over when no processor changed it
(``--objects``: the protobuf objects alone, which the exporter serializes first).

``--deep-every N`` puts structured ``gen_ai.input.messages`` (four levels, deeper than
the views decode) on one span of every Nth request: the first such batch fails in the
views and is rendered in Python, the following ones are rendered ahead of their insert.

``--genai`` compares the two ways to fill ``genai_calls``: the materialized view on
``otel_traces`` (what the exporter ships) against Python extracting the GenAI fields
from the protobuf spans (the cheapest Python can do: one scan of each span's
attributes, no insert at all), per span.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import tempfile
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from bench.workload import generate_logs_requests, generate_trace_requests
from exporters.clickhouse import factory
from exporters.clickhouse.exporter import ClickHouseExporter
from exporters.clickhouse.schema import GENAI_CALLS_MV
from otel_receiver.attributes import pick
from otel_receiver.component import Batch, ComponentSettings, RequestContext, count_items
from otel_receiver.queue import ExporterQueue
from otel_receiver.telemetry import SelfTelemetry
from semconv import attributes as sc


def _structured_messages() -> AnyValue:
    """A structured ``gen_ai.input.messages`` value: messages -> parts -> part, four levels."""
    value = AnyValue()
    for role, text in (("system", "You are a travel agent."), ("user", "Two nights in Rome, please.")):
        message = value.array_value.values.add().kvlist_value.values
        message.add(key="role").value.string_value = role
        part = message.add(key="parts").value.array_value.values.add().kvlist_value.values
        part.add(key="type").value.string_value = "text"
        part.add(key="content").value.string_value = text
    return value


def batches(n_batches: int, batch_spans: int, signal: str = "traces", deep_every: int = 0) -> list[Any]:
    """``n_batches`` merged requests of ``batch_spans`` items (spans or log records); with
    ``deep_every`` N, one span of every Nth request carries structured messages nested
    deeper than the views decode."""
    per_request = 100
    n_requests = n_batches * batch_spans // per_request
    requests: list[Any]
    if signal == "logs":
        requests = generate_logs_requests(n_requests, per_request, seed=7)
    else:
        requests = generate_trace_requests(n_requests, per_request, seed=7)
        if deep_every:
            messages = _structured_messages()
            for r in requests[::deep_every]:
                kv = r.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="gen_ai.input.messages")
                kv.value.CopyFrom(messages)
    out: list[Any] = []
    for i in range(n_batches):
        merged = type(requests[0])()
        for r in requests[i * batch_spans // per_request : (i + 1) * batch_spans // per_request]:
            merged.MergeFrom(r)
        out.append(merged)
    return out


async def run_exports(exporter: Any, work: list[Any], consumers: int) -> None:
    queue: asyncio.Queue[tuple[int, Batch]] = asyncio.Queue()
    for i, b in enumerate(work):
        queue.put_nowait((i, b))

    async def consumer() -> None:
        while not queue.empty():
            i, b = queue.get_nowait()
            await exporter.export(b, RequestContext(dedup_token=f"bench-{time.time_ns()}-{i}"))

    await asyncio.gather(*(consumer() for _ in range(consumers)))


async def measure(path: str, work: list[Any], consumers: int, drop_genai: bool) -> tuple[int, float, float]:
    cfg = factory.config_model(endpoint=f"embedded:{path}", query_endpoint=None)
    settings = ComponentSettings("clickhouse", SelfTelemetry(), logging.getLogger("bench"))
    exporter = factory.create(cfg, settings)
    assert isinstance(exporter, ClickHouseExporter)
    await exporter.start()
    if drop_genai and exporter.store is not None:
        await asyncio.to_thread(exporter.store.execute, f"DROP VIEW IF EXISTS `otel`.`{GENAI_CALLS_MV}`")
    await run_exports(exporter, work[:1], 1)  # warm-up: first-insert costs
    spans = sum(count_items(b) for b in work)
    wall, cpu = time.perf_counter(), time.process_time()
    await run_exports(exporter, work, consumers)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await exporter.shutdown()
    return spans, wall, cpu


_GENAI_KEYS = frozenset(
    {
        sc.AUDIT_TENANT_ID,
        sc.GEN_AI_PROVIDER_NAME,
        sc.GEN_AI_REQUEST_MODEL,
        sc.GEN_AI_RESPONSE_MODEL,
        sc.GEN_AI_OPERATION_NAME,
        sc.GEN_AI_USAGE_INPUT_TOKENS,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
        sc.GEN_AI_USAGE_COST,
        sc.ERROR_TYPE,
        sc.ANOMALY_KINDS,
    }
)


async def sustained(
    path: str, requests: list[Any], seconds: float, wire: bool = True
) -> tuple[int, float, float, int]:
    """Spans exported, wall and CPU seconds, inserts: the queue fed for ``seconds``;
    with ``wire``, each request with its bytes as a client sent them (what the receiver
    hands the exporter when no processor changed the request), else objects alone."""
    received = [r.SerializeToString() for r in requests] if wire else []
    cfg = factory.config_model(endpoint=f"embedded:{path}", query_endpoint=None)
    telemetry = SelfTelemetry()
    settings = ComponentSettings("clickhouse", telemetry, logging.getLogger("bench"))
    exporter = factory.create(cfg, settings)
    await exporter.start()
    for i, request in enumerate(requests[:2]):
        await exporter.export(request, RequestContext(dedup_token=f"bench-warm-up-{i}"))
    queue = ExporterQueue("clickhouse", exporter, cfg, telemetry)
    await queue.start()

    def inserts_so_far() -> float:
        name = "otel_receiver_clickhouse_insert_seconds_count"
        return sum(telemetry.value(name, {"exporter": "clickhouse", "signal": s}) for s in ("traces", "logs"))

    inserts_before = inserts_so_far()
    wall, cpu = time.perf_counter(), time.process_time()
    stop = wall + seconds
    put = 0
    i = 0
    while time.perf_counter() < stop:
        if queue.has_room():
            request = requests[i % len(requests)]
            context = RequestContext()
            if wire:
                context.set_wire(request, received[i % len(requests)], from_client=True)
            queue.put(request, context)
            put += count_items(request)
            i += 1
            if i % 10 == 0:
                await asyncio.sleep(0)
        else:
            await asyncio.sleep(0.005)
    await queue.drain(timeout=600)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    inserts = int(inserts_so_far() - inserts_before)
    await exporter.shutdown()
    return put, wall, cpu, inserts


def python_genai_extraction(work: list[ExportTraceServiceRequest]) -> tuple[int, float]:
    """CPU seconds Python needs just to read the genai_calls fields of every span."""
    spans = 0
    cpu = time.process_time()
    for b in work:
        for rs in b.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    found = pick(span.attributes, _GENAI_KEYS)
                    spans += 1
                    if sc.GEN_AI_OPERATION_NAME in found or sc.GEN_AI_PROVIDER_NAME in found:
                        _ = (span.start_time_unix_nano, span.trace_id.hex(), span.span_id.hex())
    return spans, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--batch-spans", type=int, default=10_000)
    ap.add_argument("--consumers", type=int, default=2)
    ap.add_argument(
        "--signal",
        choices=["traces", "logs", "mixed"],
        default="traces",
        help="mixed (with --sustained): traces and logs requests in turn, as one exporter gets them",
    )
    ap.add_argument("--sustained", type=float, default=0, metavar="SECONDS")
    ap.add_argument(
        "--objects",
        action="store_true",
        help="with --sustained: hand the queue protobuf objects alone (the exporter serializes them), "
        "not the objects with the bytes the client sent",
    )
    ap.add_argument(
        "--deep-every",
        type=int,
        default=0,
        metavar="N",
        help="traces: one span of every Nth request holds structured messages deeper than the SQL decodes",
    )
    ap.add_argument(
        "--genai", action="store_true", help="compare the genai_calls view with Python extraction"
    )
    args = ap.parse_args()
    if args.sustained:
        requests: list[Any] = generate_trace_requests(300, 100, seed=7)
        if args.signal == "logs":
            requests = generate_logs_requests(300, 100, seed=7)
        elif args.signal == "mixed":
            logs = generate_logs_requests(300, 100, seed=7)
            requests = [r for pair in zip(requests, logs, strict=True) for r in pair]
        path = tempfile.mkdtemp(prefix="bench-ch-")
        try:
            spans, wall, cpu, inserts = asyncio.run(
                sustained(path, requests, args.sustained, wire=not args.objects)
            )
        finally:
            shutil.rmtree(path, ignore_errors=True)
        print(
            f"sustained, queue defaults, {args.signal}: {spans / wall:,.0f} items/s wall, "
            f"{spans / cpu:,.0f} items/CPU-s ({spans:,} items in {wall:.1f} s, {inserts} inserts, "
            f"{spans / max(inserts, 1):,.0f} items per insert)"
        )
        return
    work = batches(args.batches, args.batch_spans, args.signal, args.deep_every)
    size = sum(b.ByteSize() for b in work)
    items = sum(count_items(b) for b in work)
    print(f"{args.signal}: {args.batches} batches, {items} items, {size / 1e6:.1f} MB of OTLP protobuf")
    cases = [("exporter (all views)", False)]
    if args.genai:
        cases.append(("exporter without genai_calls view", True))
    # The first store of a process runs slower (engine caches, allocator growth):
    # a discarded round keeps that out of whichever case comes first.
    warm = tempfile.mkdtemp(prefix="bench-ch-")
    try:
        asyncio.run(measure(warm, work[:2], args.consumers, False))
    finally:
        shutil.rmtree(warm, ignore_errors=True)
    for name, drop in cases:
        path = tempfile.mkdtemp(prefix="bench-ch-")
        try:
            spans, wall, cpu = asyncio.run(measure(path, work, args.consumers, drop))
        finally:
            shutil.rmtree(path, ignore_errors=True)
        print(
            f"{name:36s} {spans / wall:>10,.0f} items/s wall  {spans / cpu:>10,.0f} items/CPU-s  "
            f"({wall:.2f} s wall, {cpu:.2f} s CPU, {args.consumers} consumers)"
        )
    if args.genai:
        spans, cpu = python_genai_extraction(work)
        label = "python: read genai fields only"
        print(f"{label:36s} {'':>26s} {spans / cpu:>10,.0f} spans/CPU-s")


if __name__ == "__main__":
    main()
