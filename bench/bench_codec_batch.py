"""Cost of the OTLP/JSON codec, the batch processor and the debug/file exporters.

One process, the same realistic GenAI trace requests (``bench.workload``) for every
case, best of a few rounds (so numbers hold up on a loaded machine). Cases:

- ``protobuf parse``: ``ExportTraceServiceRequest.FromString`` (the binary receive path);
- ``otlp_json.decode`` and, for reference, ``json_format.ParseDict`` of the same
  document with base64 ids (protobuf's JSON mapping: it cannot read OTLP's hex ids);
- ``otlp_json.encode`` and ``json_format.MessageToDict`` + ``orjson.dumps``;
- ``batch process`` with the defaults (8192 items, merging requests) and with
  ``send_batch_max_size: 1000`` (every batch split), forward counting only;
- ``debug basic export`` (the raw-receive baseline exporter) and ``file export``.

Run: ``python -m bench.bench_codec_batch [--requests 20] [--spans 100] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.workload import generate_trace_requests
from exporters.debug import DebugExporterConfig
from exporters.debug import factory as debug_factory
from exporters.file import FileExporterConfig
from exporters.file import factory as file_factory
from otel_receiver import otlp_json
from otel_receiver.component import Batch, ComponentSettings, RequestContext, count_items
from otel_receiver.telemetry import SelfTelemetry
from processors.batch import BatchProcessorConfig
from processors.batch import factory as batch_factory

_IDS = ("traceId", "spanId", "parentSpanId")


def _base64_ids(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: base64.b64encode(bytes.fromhex(v)).decode() if k in _IDS else _base64_ids(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_base64_ids(v) for v in node]
    return node


def _best(rounds: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def _settings(component_id: str) -> ComponentSettings:
    return ComponentSettings(component_id, SelfTelemetry(), logging.getLogger("bench"))


def _batch_seconds(
    binaries: list[bytes], context: RequestContext, rounds: int, config: dict[str, Any]
) -> float:
    """process + shutdown of every request on a fresh processor; parsing not timed."""
    best = float("inf")
    for _ in range(rounds):
        processor = batch_factory.create(BatchProcessorConfig(**config), _settings("batch"))
        forwarded: list[int] = []

        def forward(batch: Batch, _context: RequestContext, sink: list[int] = forwarded) -> None:
            sink.append(count_items(batch))

        processor.forward = forward
        fresh = [ExportTraceServiceRequest.FromString(b) for b in binaries]
        started = time.perf_counter()
        for request in fresh:
            processor.process(request, context)
        asyncio.run(processor.shutdown())
        best = min(best, time.perf_counter() - started)
        assert sum(forwarded) == sum(count_items(r) for r in fresh)
    return best


async def _best_async(rounds: int, make: Callable[[], Awaitable[None]]) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        await make()
        best = min(best, time.perf_counter() - started)
    return best


async def _exporter_cases(
    tmp: Path, requests: list[ExportTraceServiceRequest], context: RequestContext, rounds: int
) -> list[tuple[str, float]]:
    debug = debug_factory.create(
        DebugExporterConfig(output=str(tmp / "debug.txt"), sampling_thereafter=1_000_000), _settings("debug")
    )
    file_exporter = file_factory.create(FileExporterConfig(path=str(tmp / "out.jsonl")), _settings("file"))

    async def export_all(exporter: Any) -> None:
        for request in requests:
            await exporter.export(request, context)

    await debug.start()
    await file_exporter.start()
    out = [
        ("debug basic export", await _best_async(rounds, lambda: export_all(debug))),
        (
            "file export (json, flush per request)",
            await _best_async(rounds, lambda: export_all(file_exporter)),
        ),
    ]
    await debug.shutdown()
    await file_exporter.shutdown()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--spans", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    requests = generate_trace_requests(args.requests, args.spans, seed=7)
    spans = sum(count_items(r) for r in requests)
    binaries = [r.SerializeToString() for r in requests]
    jsons = [otlp_json.encode(r) for r in requests]
    base64_docs = [orjson.dumps(_base64_ids(orjson.loads(j))) for j in jsons]
    context = RequestContext(transport="grpc", tenant="bench")
    results: list[tuple[str, float]] = []

    def case(name: str, run: Callable[[], object]) -> None:
        results.append((name, _best(args.rounds, run)))

    case("protobuf parse", lambda: [ExportTraceServiceRequest.FromString(b) for b in binaries])
    case("otlp_json.decode", lambda: [otlp_json.decode(ExportTraceServiceRequest, j) for j in jsons])
    case(
        "json_format.ParseDict (base64 ids)",
        lambda: ([json_format.ParseDict(orjson.loads(d), ExportTraceServiceRequest()) for d in base64_docs]),
    )
    case("otlp_json.encode", lambda: [otlp_json.encode(r) for r in requests])
    case(
        "json_format.MessageToDict + orjson",
        lambda: ([orjson.dumps(json_format.MessageToDict(r, use_integers_for_enums=True)) for r in requests]),
    )

    for label, config in [
        ("batch process (defaults: merge to 8192)", {}),
        (
            "batch process (send_batch_max_size 1000: split)",
            {"send_batch_size": 1000, "send_batch_max_size": 1000},
        ),
    ]:
        results.append((label, _batch_seconds(binaries, context, args.rounds, config)))

    with tempfile.TemporaryDirectory() as tmp:
        results.extend(asyncio.run(_exporter_cases(Path(tmp), requests, context, args.rounds)))

    print(f"{args.requests} requests x {args.spans} spans = {spans} spans; best of {args.rounds} rounds")
    print(f"{'case':50} {'ms':>9} {'spans/s':>12} {'us/request':>11}")
    for name, seconds in results:
        print(
            f"{name:50} {seconds * 1e3:9.1f} {spans / seconds:12,.0f} {seconds / args.requests * 1e6:11.0f}"
        )


if __name__ == "__main__":
    main()
