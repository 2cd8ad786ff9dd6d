"""Cost of the audit processor per setting, and of writing its trail into ClickHouse.

One process, the serialized requests of ``bench.workload`` (seed 43, 100 spans each),
parsed afresh for every case, processed with an authenticated principal (the processor
does nothing without one). Two numbers per case:

- *request path*: CPU seconds of ``process`` per span (stamping, the GenAI scan, chaining
  records: SHA-256 and the pending list), which holds the GIL in the receiver;
- *trail write*: CPU and wall seconds per record of writing what is pending into a real
  embedded ClickHouse (chDB) ``audit_log`` (JSONColumns serialization in Python, then
  the insert in the engine), which the trail's own thread does once a second.

Run: ``python -m bench.bench_audit [--requests 50] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.workload import generate_trace_requests
from exporters.clickhouse.config import ClickHouseConfig
from exporters.clickhouse.exporter import ClickHouseExporter
from otel_receiver.component import ComponentSettings, RequestContext
from otel_receiver.telemetry import SelfTelemetry
from processors.audit import AuditConfig, AuditProcessor
from processors.audit.trail import AuditTrail

CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("tenant and actor only", {"genai_actions": False}, False),
    ("+ trail, a record per request", {"genai_actions": False, "trail": {"genai_records": False}}, True),
    ("tenant, actor, GenAI actions", {}, False),
    ("+ trail, a record per request", {"trail": {"genai_records": False}}, True),
    ("+ trail, a record per GenAI action (defaults)", {}, True),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    bodies = [r.SerializeToString() for r in generate_trace_requests(args.requests, 100, 43, 0.1)]
    spans = args.requests * 100
    telemetry = SelfTelemetry()

    def settings() -> ComponentSettings:
        return ComponentSettings("audit", telemetry, logging.getLogger("audit"))

    store_dir = tempfile.mkdtemp(prefix="bench-audit-")
    exporter = ClickHouseExporter(
        ClickHouseConfig(endpoint=f"embedded:{store_dir}", query_endpoint=None), settings()
    )
    asyncio.run(exporter.start())
    print(f"{args.requests} requests x 100 spans, best of {args.rounds} rounds, store {store_dir}\n")
    print("| case | request path µs/span | records/span | trail write µs/record CPU (wall) |")
    print("| --- | --- | --- | --- |")
    for label, cfg, with_trail in CASES:
        proc = AuditProcessor(AuditConfig.model_validate(cfg), settings())
        if with_trail:
            # flush_interval is long: writes are timed below, not left to the thread.
            proc.trail = AuditTrail(exporter, telemetry.registry, flush_interval=3600, max_pending=10**7)
            proc.trail.start()
            proc.trail.flush()
        best, write_cpu, write_wall, records = float("inf"), float("inf"), float("inf"), 0
        for _ in range(args.rounds):
            messages = [ExportTraceServiceRequest.FromString(b) for b in bodies]
            started = time.process_time()
            for message in messages:
                proc.process(
                    message, RequestContext(tenant="acme", actor="bot", may_hold_audit_attributes=False)
                )
            best = min(best, time.process_time() - started)
            if proc.trail is not None:
                records = proc.trail.pending
                cpu, wall = time.process_time(), time.perf_counter()
                proc.trail.flush()
                write_cpu = min(write_cpu, (time.process_time() - cpu) / records)
                write_wall = min(write_wall, (time.perf_counter() - wall) / records)
        write = f"{write_cpu * 1e6:.1f} ({write_wall * 1e6:.1f})" if records else "-"
        print(f"| {label} | {best / spans * 1e6:.2f} | {records / spans:.2f} | {write} |")
    asyncio.run(exporter.shutdown())


if __name__ == "__main__":
    main()
