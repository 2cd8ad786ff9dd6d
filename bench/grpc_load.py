"""OTLP/gRPC load driver that rotates over many distinct pre-encoded requests.

``python -m bench.grpc_load --port P --bodies DIR [--duration S | --requests N]``

h2load posts one body over and over. That is fine for a receiver that does not look at
what it receives, but it flatters processors that cache per value (the PII redactor
remembers validated candidates, the cost processor its prices): the second request is
all cache hits. This driver sends every ``*.pb`` file of ``--bodies`` in turn, through
grpcio's C core with pre-serialized bytes (no protobuf work on this side), with
``--connections`` channels x ``--streams`` concurrent calls like h2load's ``-c``/``-m``.

It uses about half a core at 2,000 requests/s, so the benchmark keeps h2load for the
raw receive baseline (which must not be limited by its driver) and uses this driver
where the receiver's processors, not the driver, bound the rate.

Prints one line: ``BENCH ok=.. failed=.. duration_us=.. p50_us=.. p99_us=.. statuses=..``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import grpc

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


async def drive(
    port: int, bodies: Sequence[bytes], duration: float, requests: int, connections: int, streams: int
) -> tuple[int, Counter[str], float, list[float]]:
    channels = [
        # A distinct option per channel keeps grpcio from sharing one subchannel (and so
        # one HTTP/2 connection) between them.
        grpc.aio.insecure_channel(
            f"127.0.0.1:{port}",
            options=[("grpc.max_send_message_length", 64 << 20), ("bench.channel", i)],
        )
        for i in range(connections)
    ]
    # No serializer: the bodies are already OTLP protobuf bytes, the response is ignored.
    calls = [ch.unary_unary(TRACE_EXPORT) for ch in channels]
    ok = 0
    failed: Counter[str] = Counter()
    latencies: list[float] = []
    sent = 0
    deadline = time.monotonic() + duration

    def more() -> bool:
        return sent < requests if requests else time.monotonic() < deadline

    async def stream(call: grpc.aio.UnaryUnaryMultiCallable) -> None:
        nonlocal ok, sent
        while more():
            body = bodies[sent % len(bodies)]
            sent += 1
            started = time.monotonic()
            try:
                await call(body, timeout=30)
            except grpc.aio.AioRpcError as e:
                failed[e.code().name] += 1
                continue
            ok += 1
            latencies.append(time.monotonic() - started)

    begin = time.monotonic()
    await asyncio.gather(*(stream(call) for call in calls for _ in range(streams)))
    elapsed = time.monotonic() - begin
    for ch in channels:
        await ch.close()
    return ok, failed, elapsed, latencies


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bodies", type=Path, required=True, help="directory of *.pb request bodies")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds to drive")
    parser.add_argument("--requests", type=int, default=0, help="send this many instead (warm-up)")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--streams", type=int, default=4, help="concurrent calls per connection")
    args = parser.parse_args(argv)
    bodies = [p.read_bytes() for p in sorted(args.bodies.glob("*.pb"))]
    if not bodies:
        print(f"no *.pb bodies in {args.bodies}", file=sys.stderr)
        return 2
    ok, failed, elapsed, latencies = asyncio.run(
        drive(args.port, bodies, args.duration, args.requests, args.connections, args.streams)
    )
    cuts = (
        statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    )
    p50, p99 = (cuts[49], cuts[98]) if cuts else (0.0, 0.0)
    statuses = ",".join(f"{k}:{v}" for k, v in sorted(failed.items())) or "-"
    print(
        f"BENCH ok={ok} failed={sum(failed.values())} duration_us={round(elapsed * 1e6)} "
        f"p50_us={round(p50 * 1e6)} p99_us={round(p99 * 1e6)} statuses={statuses}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
