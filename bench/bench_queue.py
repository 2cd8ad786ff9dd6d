"""Cost of the exporter queue per request: ``put`` into N queues of a null exporter.

Each 100-span request from ``bench.workload`` is put into every queue, then the loop
turns once (the next request arrives in another turn, as from a client). Measured with
the exporter exporting from a consumer task, and with ``exports_now`` (the queue exports
from ``put`` when nothing is queued ahead). Best of ``--repeat`` runs, wall time.

    .venv/bin/python -m bench.bench_queue [--requests 20000] [--queues 1 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence

from bench.workload import generate_trace_requests
from otel_receiver.component import Batch, ComponentSettings, Exporter, ExporterConfig, RequestContext, Signal
from otel_receiver.queue import ExporterQueue
from otel_receiver.telemetry import SelfTelemetry


class _ConsumerNull(Exporter):
    signals = frozenset(Signal)
    suspends = False

    async def export(self, batch: Batch, context: RequestContext) -> None:
        return None


class _PutNull(_ConsumerNull):
    exports_now = True

    def export_now(self, parts: Sequence[Batch], context: RequestContext) -> None:
        return None


async def _run(exporter_type: type[Exporter], queues: int, requests: int) -> float:
    """Microseconds per request."""
    telemetry = SelfTelemetry()
    settings = ComponentSettings("null", telemetry, logging.getLogger("bench.queue"))
    qs = [
        ExporterQueue(f"null/{i}", exporter_type(ExporterConfig(), settings), ExporterConfig(), telemetry)
        for i in range(queues)
    ]
    for q in qs:
        await q.start()
    batch = generate_trace_requests(1, 100, seed=7)[0]
    start = time.perf_counter()
    for _ in range(requests):
        context = RequestContext()
        for q in qs:
            q.put(batch, context, 100)
        await asyncio.sleep(0)
    while any(q.size for q in qs):
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - start
    for q in qs:
        await q.drain(5)
    return elapsed / requests * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--queues", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"{'queues':>6} {'consumer task':>15} {'from put':>10}   (us per request)")
    for n in args.queues:
        rates = [
            min(asyncio.run(_run(kind, n, args.requests)) for _ in range(args.repeat))
            for kind in (_ConsumerNull, _PutNull)
        ]
        print(f"{n:>6} {rates[0]:>15.2f} {rates[1]:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
