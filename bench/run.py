"""Receiver benchmark: raw receive vs the full GenAI pipeline, over OTLP/gRPC and OTLP/HTTP.

``python -m bench.run`` (what ``make bench`` runs):

1. writes pre-encoded request bodies with ``bench.workload`` (100 realistic GenAI spans
   per request, 10% with PII in the prompts);
2. for each scenario, starts ``otel-receiver run --config <generated yaml>`` as a
   subprocess on free loopback ports:
   - ``raw``: otlp receiver -> debug exporter (``verbosity: basic``), no processors;
   - ``raw+prometheus``: the same plus the prometheus exporter's span-derived metrics
     (one body is enough for h2load here: the metrics cache nothing per value);
   - ``pipeline``: every GenAI processor the registry can load at run time
     (genai_normalize, pii_redaction, genai_cost, anomaly, batch) -> debug;
   - ``pipeline+clickhouse``: the same, also exporting to embedded ClickHouse (chDB),
     when that exporter is installed;
   and drives it at full speed over gRPC and OTLP/HTTP protobuf. ``--bodies`` distinct
   requests (default 200) are posted in turn: processors cache per value, and one body
   sent over and over would make every request after the first all cache hits. HTTP:
   wrk with a Lua script. gRPC: h2load (one pre-framed body) where no processor reads
   the spans (``raw``, rotel), ``bench.grpc_load`` (grpcio, every body in turn) where
   processors do;
3. as a driver check, runs the same drivers against rotel's Rust collector (blackhole
   exporter): if it takes far more requests per second than our receiver, the drivers
   are not what limits our numbers; the drivers' own CPU use is reported too;
4. prints a markdown table (spans/s = requests/s x spans per request, cross-checked
   with the receiver's ``otel_receiver_received_items_total`` scraped from its
   Prometheus self-metrics endpoint; p50/p99 request latency; pipeline/raw ratio) and
   writes it, with date and machine, into ``bench/README.md``, section
   "receiver (raw vs pipeline)".

h2load and wrk are used because they are well-kept, fast C load generators that keep
the client side out of the Python process being measured; h2load cannot rotate bodies,
hence the grpcio driver for the processor scenarios, where the receiver runs at a tenth
of the raw rate and the driver needs a few percent of a core.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families

from bench import workload

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "bench" / "README.md"
SECTION_TITLE = "receiver (raw vs pipeline)"
TRACE_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
PIPELINE_PROCESSORS = ("genai_normalize", "pii_redaction", "genai_cost", "anomaly", "batch")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")
ROTATION = "rotation"  # directory of distinct request bodies, NNNN.pb, posted in turn

WRK_SCRIPT = """\
-- POST pre-encoded OTLP/protobuf bodies in turn; report stats on one machine-readable line.
local dir = os.getenv("BENCH_BODY_DIR")
local count = tonumber(os.getenv("BENCH_BODY_COUNT"))
local headers = {["Content-Type"] = "application/x-protobuf"}
local requests = {}
local next_request = 0

-- In init, not at load time: wrk sets the URL's path and Host header only after loading.
init = function(args)
  for i = 1, count do
    local f = assert(io.open(string.format("%s/%04d.pb", dir, i - 1), "rb"))
    requests[i] = wrk.format("POST", nil, headers, f:read("*all"))
    f:close()
  end
end

request = function()
  next_request = next_request % count + 1
  return requests[next_request]
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d non2xx=%d errors=%d p50_us=%d p99_us=%d\\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Run:
    scenario: str
    protocol: str  # "gRPC" / "HTTP"
    driver: str  # e.g. "wrk, 200 bodies"
    requests: int
    failed: int
    seconds: float
    p50_ms: float
    p99_ms: float
    driver_cpu: float  # share of one core
    server_cpu: float | None  # share of one core
    counted: SpanCounters | None  # the receiver's own counts over the run
    spans_per_request: int
    round: int = 1  # with --rounds, which pass over the scenarios this run belongs to
    loop_cpu: float | None = None  # CPU seconds of the receiver's event-loop thread over the run

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def spans_per_s(self) -> float:
        return self.rps * self.spans_per_request

    @property
    def loop_us_per_span(self) -> float | None:
        spans = self.requests * self.spans_per_request
        return None if self.loop_cpu is None or not spans else self.loop_cpu / spans * 1e6

    @property
    def cross_check(self) -> str:
        if self.counted is None:
            return "n/a"
        expected = self.requests * self.spans_per_request
        return f"{self.counted.received / expected:.2f}" if expected else "n/a"

    @property
    def failures(self) -> str:
        if not self.failed:
            return "0"
        if self.counted is None or not self.counted.refused:
            return str(self.failed)
        reasons = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(self.counted.refused.items()))
        return f"{self.failed} (receiver: {reasons})"


@dataclass
class SpanCounters:
    received: float = 0.0  # spans accepted
    refused: dict[str, float] = field(default_factory=dict)  # requests turned away, by outcome

    def minus(self, before: SpanCounters) -> SpanCounters:
        refused = {k: v - before.refused.get(k, 0.0) for k, v in self.refused.items()}
        return SpanCounters(self.received - before.received, {k: v for k, v in refused.items() if v})


@dataclass
class Scenario:
    name: str
    processors: list[str]
    extra_exporters: dict[str, dict[str, object]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def available_components() -> tuple[list[str], bool, list[str]]:
    """Pipeline processors loadable right now, whether the clickhouse exporter is, and notes."""
    from otel_receiver.registry import REGISTRY

    procs, notes = [], []
    for name in PIPELINE_PROCESSORS:
        try:
            REGISTRY.factory("processors", name)
            procs.append(name)
        except Exception as e:  # a missing or broken component only shrinks the pipeline
            notes.append(f"processor {name} not available ({type(e).__name__})")
    try:
        REGISTRY.factory("exporters", "clickhouse")
        clickhouse = True
    except Exception as e:
        clickhouse = False
        notes.append(f"clickhouse exporter not available ({type(e).__name__})")
    return procs, clickhouse, notes


def processor_costs(processors: Sequence[str], args: argparse.Namespace, requests: int = 30) -> list[str]:
    """CPU cost of decoding and of each processor on the same requests, in this process:
    where the pipeline's time goes, independent of the drivers and of the network."""
    import asyncio
    import logging

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from otel_receiver.component import ComponentSettings, RequestContext
    from otel_receiver.registry import REGISTRY
    from otel_receiver.telemetry import SelfTelemetry

    bodies = [
        r.SerializeToString()
        for r in workload.generate_trace_requests(
            requests, args.spans_per_request, args.seed + 1, args.pii_fraction
        )
    ]
    rows = ["| step | CPU ms per request | spans/s on one core |", "|---|---|---|"]

    def row(name: str, seconds: float) -> None:
        per_request = seconds / requests
        rate = args.spans_per_request / per_request if per_request else float("inf")
        rows.append(f"| {name} | {per_request * 1000:.2f} | {rate:,.0f} |")

    start = time.process_time()
    for body in bodies:
        ExportTraceServiceRequest.FromString(body)
    row("protobuf decode", time.process_time() - start)
    for name in processors:
        if name == "batch":
            continue  # buffers and forwards; its cost is in the end-to-end numbers
        factory = REGISTRY.factory("processors", name)
        settings = ComponentSettings(name, SelfTelemetry(), logging.getLogger(f"bench.{name}"))
        processor = factory.create(factory.config_model.model_validate({}), settings)
        asyncio.run(processor.start())
        messages = [ExportTraceServiceRequest.FromString(b) for b in bodies]
        start = time.process_time()
        for message in messages:
            processor.process(message, RequestContext())
        row(name, time.process_time() - start)
        asyncio.run(processor.shutdown())
    return rows


def receiver_yaml(scenario: Scenario, grpc_port: int, http_port: int, metrics_port: int) -> str:
    lines = [
        "receivers:",
        "  otlp:",
        "    protocols:",
        f"      grpc: {{endpoint: 127.0.0.1:{grpc_port}}}",
        f"      http: {{endpoint: 127.0.0.1:{http_port}}}",
        "processors:" if scenario.processors else "processors: {}",
    ]
    lines += [f"  {p}:" for p in scenario.processors]
    lines += [
        "exporters:",
        # Counting only: the terminal must not be what is measured.
        "  debug: {verbosity: basic, sampling_thereafter: 1000000}",
        # Serves the receiver's self-metrics; fed by no spans, so it costs the traces nothing.
        f"  prometheus/self: {{endpoint: 127.0.0.1:{metrics_port}, span_metrics: false}}",
    ]
    for name, cfg in scenario.extra_exporters.items():
        inner = ", ".join(f"{k}: {v}" for k, v in cfg.items())
        lines.append(f"  {name}: {{{inner}}}")
    exporters = ["debug", *scenario.extra_exporters]
    lines += [
        "service:",
        "  telemetry: {logs: {level: warning}}",
        "  pipelines:",
        "    traces:",
        "      receivers: [otlp]",
        f"      processors: [{', '.join(scenario.processors)}]",
        f"      exporters: [{', '.join(exporters)}]",
        "    metrics:",
        "      receivers: [otlp]",
        "      exporters: [prometheus/self]",
    ]
    return "\n".join(lines) + "\n"


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def process_cpu_seconds(pid: int, thread: int | None = None) -> float:
    """utime + stime of a process (all its threads), or of one of its threads, from /proc."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Server:
    """A receiver under test: our CLI or rotel, as a subprocess on loopback."""

    def __init__(
        self,
        argv: list[str],
        health_url: str,
        metrics_url: str | None,
        log: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv, self.health_url, self.metrics_url, self.log = argv, health_url, metrics_url, log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        logf = self.log.open("wb")
        self.proc = subprocess.Popen(
            self.argv, stdout=logf, stderr=subprocess.STDOUT, env=self.env, cwd=self.log.parent
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited with {self.proc.returncode}; see {self.log}")
            if self.ready():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"{self.argv[0]} not ready after 60 s; see {self.log}")

    def ready(self) -> bool:
        return _http_ok(self.health_url)

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return process_cpu_seconds(self.proc.pid)

    def loop_cpu_seconds(self) -> float | None:
        """The event-loop thread's: our receiver's main thread, where all Python runs."""
        assert self.proc is not None
        return process_cpu_seconds(self.proc.pid, self.proc.pid)

    def span_counters(self) -> SpanCounters | None:
        """Spans the receiver accepted, and requests it turned away by outcome, from its self-metrics."""
        if self.metrics_url is None:
            return None
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            text = resp.read().decode()
        counters = SpanCounters()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if not sample.name.endswith("_total") or sample.labels.get("signal") != "traces":
                    continue
                if family.name == "otel_receiver_received_items":
                    counters.received += sample.value
                elif family.name == "otel_receiver_requests":
                    outcome = sample.labels.get("outcome", "?")
                    if outcome not in ("ok", "partial"):
                        counters.refused[outcome] = counters.refused.get(outcome, 0.0) + sample.value
        return counters


class RotelServer(Server):
    """rotel's collector with a blackhole exporter: the driver-ceiling reference."""

    def ready(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True
        return False

    port = 0

    def loop_cpu_seconds(self) -> float | None:
        return None  # its work is spread over its runtime's threads


def _run_driver(argv: list[str], env: dict[str, str] | None = None) -> tuple[str, float, float]:
    """Run a load driver; return its stdout, wall seconds and CPU seconds (from wait4)."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}):\n{out[-2000:]}")
    return out, wall, usage.ru_utime + usage.ru_stime


def h2load(
    port: int, body: Path, seconds: float, clients: int, streams: int, log: Path, warmup: bool = False
) -> tuple[int, int, float, list[float], float]:
    """(succeeded, failed, seconds, latencies in ms, driver CPU share of one core)."""
    argv = [
        "h2load",
        "-c",
        str(clients),
        "-m",
        str(streams),
        "-t",
        "1",
        "--header",
        "content-type: application/grpc",
        "--header",
        "te: trailers",
        "-d",
        str(body),
    ]
    if warmup:
        argv += ["-n", str(clients * streams * 4)]
    else:
        argv += ["-D", str(max(1, round(seconds))), "--log-file", str(log)]
    argv.append(f"http://127.0.0.1:{port}{TRACE_PATH}")
    out, wall, cpu = _run_driver(argv)
    if warmup:
        return 0, 0, wall, [], 0.0
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed", out)
    finished = re.search(r"finished in ([\d.]+)s", out)
    if not m or not finished:
        raise RuntimeError(f"cannot parse h2load output:\n{out[-2000:]}")
    latencies = []
    for line in log.read_text().splitlines():
        parts = line.split()
        # start time (us since epoch), HTTP status, elapsed (us)
        if len(parts) >= 3 and parts[1] == "200":
            latencies.append(int(parts[2]) / 1000)
    return int(m.group(1)), int(m.group(2)), float(finished.group(1)), latencies, cpu / wall


def wrk(
    port: int, bodies: Path, seconds: float, connections: int, script: Path, warmup: bool = False
) -> tuple[int, int, float, float, float, float]:
    """(requests, failed, seconds, p50 ms, p99 ms, driver CPU share of one core), posting
    every ``NNNN.pb`` of ``bodies`` in turn."""
    count = len(list(bodies.glob("*.pb")))
    env = dict(os.environ, BENCH_BODY_DIR=str(bodies), BENCH_BODY_COUNT=str(count))
    duration = 1 if warmup else max(1, round(seconds))
    argv = [
        "wrk",
        "-t",
        "1",
        "-c",
        str(connections),
        "-d",
        f"{duration}s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/v1/traces",
    ]
    out, wall, cpu = _run_driver(argv, env)
    m = re.search(
        r"BENCH requests=(\d+) duration_us=(\d+) non2xx=(\d+) errors=(\d+) "
        r"p50_us=(\d+) p99_us=(\d+)",
        out,
    )
    if not m:
        raise RuntimeError(f"cannot parse wrk output:\n{out[-2000:]}")
    req, dur_us, non2xx, errors, p50, p99 = (int(g) for g in m.groups())
    failed = non2xx + errors
    return req - failed, failed, dur_us / 1e6, p50 / 1000, p99 / 1000, cpu / wall


def grpc_load(
    port: int, bodies: Path, seconds: float, connections: int, streams: int, warmup: bool = False
) -> tuple[int, int, float, float, float, float]:
    """``bench.grpc_load`` posting every body of ``bodies`` in turn: (succeeded, failed,
    seconds, p50 ms, p99 ms, driver CPU share of one core)."""
    argv = [
        sys.executable,
        "-m",
        "bench.grpc_load",
        "--port",
        str(port),
        "--bodies",
        str(bodies),
        "--connections",
        str(connections),
        "--streams",
        str(streams),
    ]
    argv += ["--requests", str(connections * streams * 4)] if warmup else ["--duration", str(seconds)]
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    out, wall, cpu = _run_driver(argv, dict(os.environ, PYTHONPATH=path))
    m = re.search(r"BENCH ok=(\d+) failed=(\d+) duration_us=(\d+) p50_us=(\d+) p99_us=(\d+)", out)
    if not m:
        raise RuntimeError(f"cannot parse bench.grpc_load output:\n{out[-2000:]}")
    ok, failed, dur_us, p50, p99 = (int(g) for g in m.groups())
    return ok, failed, dur_us / 1e6, p50 / 1000, p99 / 1000, cpu / wall


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _counted_run(
    server: Server, drive: Callable[[], T]
) -> tuple[T, SpanCounters | None, float, float | None]:
    """``drive()``'s result, the receiver's span counters over it, its CPU seconds and its
    event-loop thread's (None where it has none)."""
    before, cpu0, loop0 = server.span_counters(), server.cpu_seconds(), server.loop_cpu_seconds()
    result = drive()
    after, cpu1, loop1 = server.span_counters(), server.cpu_seconds(), server.loop_cpu_seconds()
    counted = None if before is None or after is None else after.minus(before)
    loop = None if loop0 is None or loop1 is None else loop1 - loop0
    return result, counted, cpu1 - cpu0, loop


def measure(
    server: Server,
    name: str,
    grpc_port: int,
    http_port: int,
    bodies: Path,
    work: Path,
    args: argparse.Namespace,
    reads_content: bool = True,
) -> list[Run]:
    """Drive one running receiver over each protocol.

    ``reads_content``: the receiver runs processors that look at (and cache per) span
    content, so gRPC load must rotate over distinct requests (``bench.grpc_load``);
    otherwise h2load's single body is the stricter, faster driver.
    """
    runs: list[Run] = []
    spans = args.spans_per_request
    rotation = bodies / ROTATION
    if "grpc" in args.protocols:
        if args.grpc_driver == "rotation" or (args.grpc_driver == "auto" and reads_content):
            driver = f"grpcio, {args.bodies} bodies"
            grpc_load(grpc_port, rotation, 0, args.clients, args.streams, warmup=True)
            (ok, failed, secs, p50, p99, dcpu), counted, cpu, loop = _counted_run(
                server, lambda: grpc_load(grpc_port, rotation, args.duration, args.clients, args.streams)
            )
        else:
            driver = "h2load, 1 body"
            body = bodies / "traces.grpc"
            h2load(grpc_port, body, 0, args.clients, args.streams, work / "h2.log", warmup=True)
            log = work / f"h2-{name}.log"
            (ok, failed, secs, lat, dcpu), counted, cpu, loop = _counted_run(
                server, lambda: h2load(grpc_port, body, args.duration, args.clients, args.streams, log)
            )
            p50, p99 = percentile(lat, 50), percentile(lat, 99)
            # h2load sees gRPC errors as HTTP 200 (the status is in the trailers): the spans
            # the receiver accepted tell how many of those responses were successes.
            if counted is not None:
                accepted = min(ok, round(counted.received / spans))
                ok, failed = accepted, failed + ok - accepted
        measured = Run(name, "gRPC", driver, ok, failed, secs, p50, p99, dcpu, cpu / secs, counted, spans)
        measured.loop_cpu = loop
        runs.append(measured)
    if "http" in args.protocols:
        script = work / "post.lua"
        script.write_text(WRK_SCRIPT)
        wrk(http_port, rotation, 1, args.connections, script, warmup=True)
        (ok, failed, secs, p50, p99, dcpu), counted, cpu, loop = _counted_run(
            server, lambda: wrk(http_port, rotation, args.duration, args.connections, script)
        )
        driver = f"wrk, {args.bodies} bodies"
        measured = Run(name, "HTTP", driver, ok, failed, secs, p50, p99, dcpu, cpu / secs, counted, spans)
        measured.loop_cpu = loop
        runs.append(measured)
    return runs


def run_ours(scenario: Scenario, bodies: Path, work: Path, args: argparse.Namespace) -> list[Run]:
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    config = work / f"{scenario.name.replace('+', '-')}.yaml"
    config.write_text(receiver_yaml(scenario, grpc_port, http_port, metrics_port))
    cli = Path(sys.executable).with_name("otel-receiver")
    argv = [str(cli) if cli.exists() else "otel-receiver", "run", "--config", str(config)]
    # The source tree first on the path: the receiver under test is this checkout, even
    # when the venv's editable install is stale.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    server = Server(
        argv,
        f"http://127.0.0.1:{http_port}/health",
        f"http://127.0.0.1:{metrics_port}/metrics",
        work / f"{config.stem}.log",
        env,
    )
    with server:
        return measure(
            server,
            scenario.name,
            grpc_port,
            http_port,
            bodies,
            work,
            args,
            reads_content=bool(scenario.processors),
        )


def rotel_binary() -> Path | None:
    try:
        import rotel
    except ImportError:
        return None
    path = Path(rotel.__file__).parent / "rotel-agent"
    return path if path.exists() else None


def run_rotel(binary: Path, bodies: Path, work: Path, args: argparse.Namespace) -> list[Run]:
    grpc_port, http_port = free_port(), free_port()
    argv = [
        str(binary),
        "start",
        "--otlp-grpc-endpoint",
        f"127.0.0.1:{grpc_port}",
        "--otlp-http-endpoint",
        f"127.0.0.1:{http_port}",
        "--exporter",
        "blackhole",
        "--otlp-grpc-max-recv-msg-size-mib",
        "64",
        "--pid-file",
        str(work / "rotel.pid"),
        "--log-file",
        str(work / "rotel-agent.log"),
    ]
    server = RotelServer(argv, "", None, work / "rotel.log")
    server.port = grpc_port
    with server:
        return measure(
            server, "rotel (reference)", grpc_port, http_port, bodies, work, args, reads_content=False
        )


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}, load average at start {load}"
    )


def table(runs: Sequence[Run]) -> str:
    head = (
        "| scenario | protocol | driver | spans/s | req/s | p50 ms | p99 ms | failed (refused by reason) "
        "| receiver count / driver "
        "| receiver CPU | loop thread us/span | driver CPU |"
    )
    rows = [head, "|" + "---|" * 12]
    rounds = max((r.round for r in runs), default=1)
    for r in runs:
        scenario = f"{r.scenario} ({r.round})" if rounds > 1 else r.scenario
        server_cpu = "n/a" if r.server_cpu is None else f"{r.server_cpu:.0%}"
        loop = r.loop_us_per_span
        loop_cpu = "n/a" if loop is None else f"{loop:.2f}"
        rows.append(
            f"| {scenario} | {r.protocol} | {r.driver} | {r.spans_per_s:,.0f} | {r.rps:,.1f} "
            f"| {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.failures} | {r.cross_check} | {server_cpu} "
            f"| {loop_cpu} | {r.driver_cpu:.0%} |"
        )
    return "\n".join(rows)


def ratios(runs: Sequence[Run]) -> list[str]:
    """Each scenario's throughput over the raw run of the same round and protocol.

    With several rounds the median is the result: the raw baseline itself moves by 20%
    between runs a minute apart on this shared machine. A ratio within one round cancels
    slow drift only; single rounds still scatter by about 0.15, hence the median.
    """
    raw = {(r.round, r.protocol): r for r in runs if r.scenario == "raw" and r.spans_per_s}
    per: dict[tuple[str, str], list[float]] = {}
    # The same ratio from the event-loop thread's CPU per span: raw's over the scenario's.
    # That thread runs all the Python, so it bounds the throughput when it is busy, and
    # its CPU time moves less than throughput when other work shares the cores.
    by_loop: dict[tuple[str, str], list[float]] = {}
    for r in runs:
        base = raw.get((r.round, r.protocol))
        if r.scenario == "raw" or base is None:
            continue
        per.setdefault((r.scenario, r.protocol), []).append(r.spans_per_s / base.spans_per_s)
        mine, theirs = r.loop_us_per_span, base.loop_us_per_span
        if mine and theirs:
            by_loop.setdefault((r.scenario, r.protocol), []).append(theirs / mine)
    out = []
    for label, ratio_of in (("", per), (" by event-loop thread CPU per span", by_loop)):
        for (scenario, protocol), values in ratio_of.items():
            if len(values) == 1:
                out.append(f"- {scenario} / raw{label}, {protocol}: {values[0]:.2f}")
            else:
                rounds = ", ".join(f"{v:.2f}" for v in values)
                out.append(
                    f"- {scenario} / raw{label}, {protocol}: median {statistics.median(values):.2f} over "
                    f"{len(values)} rounds ({rounds})"
                )
    return out


def driver_check(runs: Sequence[Run]) -> list[str]:
    """Evidence that the load drivers were not what limited the numbers."""
    if not runs:
        return []
    busiest = max(runs, key=lambda r: r.driver_cpu)
    lines = [
        f"Driver check: each driver ran one thread and used at most {busiest.driver_cpu:.0%} of a "
        f"core ({busiest.scenario}, {busiest.protocol}, {busiest.driver}), so none was saturated."
    ]
    by = {(r.scenario, r.protocol): r for r in runs}
    for protocol in ("gRPC", "HTTP"):
        ref, raw = by.get(("rotel (reference)", protocol)), by.get(("raw", protocol))
        if ref is None or raw is None or not raw.spans_per_s:
            continue
        cpu = "n/a" if ref.server_cpu is None else f"{ref.server_cpu:.0%}"
        if ref.spans_per_s >= raw.spans_per_s:
            lines.append(
                f"With the same {ref.driver.split(',')[0]} driver rotel took {ref.spans_per_s:,.0f} "
                f"spans/s ({ref.spans_per_s / raw.spans_per_s:.1f}x our raw receive), so the driver goes at "
                "least that fast."
            )
        else:
            lines.append(
                f"rotel's {protocol} path stayed below our raw receive ({ref.spans_per_s:,.0f} "
                f"spans/s at {cpu} of a core: it waits rather than computes), so it is no "
                "ceiling for that protocol; the driver CPU share is the "
                "evidence there."
            )
    return [" ".join(lines)]


def report(
    runs: Sequence[Run],
    notes: Sequence[str],
    args: argparse.Namespace,
    started: dt.datetime,
    host: str,
    processors: Sequence[str],
    costs: Sequence[str],
) -> str:
    grpc_driver = {
        "auto": "by h2load (one body) where no processor reads the spans and by `bench.grpc_load` "
        "(grpcio, every body in turn) where processors do",
        "h2load": "by h2load (one body) in every scenario",
        "rotation": "by `bench.grpc_load` (grpcio, every body in turn) in every scenario",
    }[args.grpc_driver]
    rounds = (
        f", the scenarios run in turn {args.rounds} times, in reverse order every other round (the round "
        "in brackets)"
        if args.rounds > 1
        else ""
    )
    lines = [
        f"## {SECTION_TITLE}",
        "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC on {host}. Produced by `make bench` "
        f"(`python -m bench.run --duration {args.duration:g}`): each request carries "
        f"{args.spans_per_request} GenAI spans from `bench.workload` (seed {args.seed}, "
        f"{args.pii_fraction:.0%} of prompts with PII), {args.bodies} distinct requests posted in turn "
        "(processors cache per value: one body repeated would make every request after the first "
        f"all cache hits); gRPC {args.clients} connections x {args.streams} streams, {grpc_driver}; "
        f"HTTP by wrk, {args.connections} connections, every body in turn; "
        f"{args.duration:g} s per run after a short warm-up{rounds}. `raw` = otlp -> debug (basic), "
        "no processors; "
        "`pipeline` = "
        f"{' -> '.join(processors) or '(none available)'} -> debug; `pipeline+clickhouse` also exports to "
        "embedded ClickHouse (chDB). `rotel (reference)` is rotel's Rust collector with a blackhole exporter "
        "driven by the same drivers: the drivers' ceiling on this machine.",
        "",
        table(runs),
        "",
        "spans/s = requests/s x spans per request as the driver saw them; *receiver count / driver* = "
        'the receiver\'s own `otel_receiver_received_items_total{signal="traces"}` delta over the run '
        "divided by succeeded requests x spans (1.00 = every acknowledged span counted; slightly above 1 "
        "when requests in flight at the end were received but not counted by the driver). For gRPC, "
        "h2load counts every HTTP 200 as success although the gRPC status is in the trailers, so "
        "succeeded requests are capped at the receiver's accepted spans / spans per request. *failed* "
        "lists the receiver's own request outcomes other than ok (throttled = exporter queue full, "
        "answered 503/UNAVAILABLE with a retry delay). CPU columns are "
        "shares of one core (receiver: utime+stime of its process from /proc; driver: from wait4). "
        "*loop thread us/span*: CPU of the receiver's event-loop thread (its main thread, where all "
        "the Python runs) per span; the ratios below are also given from it (raw's over the "
        "scenario's), which moves less than throughput when other work shares the cores.",
        "",
        *driver_check(runs),
        "",
        "Ratios (pipeline throughput / raw throughput):",
        *ratios(runs),
    ]
    if costs:
        lines += [
            "",
            f"Where the pipeline's time goes (in-process CPU time per {args.spans_per_request}-span request "
            "of the same workload, each processor with its default config, `time.process_time`):",
            "",
            *costs,
        ]
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    lines += [
        "",
        "Caveat: the machine has 2 cores shared with other work (the driver, the receiver and, during "
        "development, other engineers' jobs compete for them), so absolute numbers are pessimistic; the "
        "ratios are the more stable result.",
    ]
    return "\n".join(lines) + "\n"


def update_readme(section: str) -> None:
    """Replace (or append) only our section; other benchmarks keep theirs."""
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^## {re.escape(SECTION_TITLE)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    README.write_text(text.rstrip("\n") + "\n")


def check_tools() -> list[str]:
    return [tool for tool in ("h2load", "wrk") if shutil.which(tool) is None]


@contextlib.contextmanager
def workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
    else:
        with tempfile.TemporaryDirectory(prefix="otel-bench-") as d:
            yield Path(d)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured run")
    parser.add_argument("--spans-per-request", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--pii-fraction", type=float, default=0.1)
    parser.add_argument("--clients", type=int, default=4, help="h2load connections")
    parser.add_argument("--streams", type=int, default=4, help="h2load concurrent streams per connection")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--bodies", type=int, default=200, help="distinct requests posted in turn")
    parser.add_argument("--protocols", nargs="+", choices=["grpc", "http"], default=["grpc", "http"])
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=["raw", "raw+prometheus", "pipeline", "pipeline+clickhouse", "rotel"],
        default=["raw", "raw+prometheus", "pipeline", "pipeline+clickhouse", "rotel"],
    )
    parser.add_argument(
        "--processors",
        nargs="+",
        default=None,
        help="pipeline processors to use instead of every available one, in order",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the scenarios in turn this many times; ratios are per round, reported as the median",
    )
    parser.add_argument(
        "--grpc-driver",
        choices=["auto", "h2load", "rotation"],
        default="auto",
        help="gRPC load: h2load with one body, bench.grpc_load over every body, or auto (h2load "
        "unless processors read the spans); `rotation` gives raw and pipeline the same driver",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep configs, logs and bodies here")
    parser.add_argument("--no-readme", action="store_true", help="do not update bench/README.md")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    missing = check_tools()
    if missing:
        print(f"missing load drivers: {', '.join(missing)} (Debian: nghttp2-client, wrk)", file=sys.stderr)
        return 2
    started = dt.datetime.now(dt.UTC)
    host = machine()
    processors, clickhouse, notes = available_components()
    if args.processors is not None:
        processors = args.processors
    with workdir(args.workdir) as work:
        bodies = work / "bodies"
        workload.write_bodies(bodies, args.spans_per_request, args.seed, args.pii_fraction)
        workload.write_trace_rotation(
            bodies / ROTATION, args.bodies, args.spans_per_request, args.seed, args.pii_fraction
        )
        scenarios: list[Scenario] = []
        if "raw" in args.scenarios:
            scenarios.append(Scenario("raw", []))
        if "raw+prometheus" in args.scenarios:
            scenarios.append(
                Scenario("raw+prometheus", [], {"prometheus": {"endpoint": f"127.0.0.1:{free_port()}"}})
            )
        if "pipeline" in args.scenarios:
            scenarios.append(Scenario("pipeline", processors))
        if "pipeline+clickhouse" in args.scenarios and clickhouse:
            store = work / "clickhouse-data"
            scenarios.append(
                Scenario("pipeline+clickhouse", processors, {"clickhouse": {"endpoint": f"embedded:{store}"}})
            )
        runs: list[Run] = []
        # Rounds interleave the scenarios, in reverse order every other round (raw,
        # pipeline, pipeline, raw, ...), so that a drift in the machine's speed hits both
        # sides of each ratio alike.
        for n in range(1, args.rounds + 1):
            for scenario in scenarios if n % 2 else scenarios[::-1]:
                label = f" (round {n}/{args.rounds})" if args.rounds > 1 else ""
                print(f"running {scenario.name}{label} ...", file=sys.stderr, flush=True)
                try:
                    runs += [replace(r, round=n) for r in run_ours(scenario, bodies, work, args)]
                except RuntimeError as e:
                    notes.append(f"{scenario.name} failed: {textwrap.shorten(str(e), 300)}")
                    print(f"  {e}", file=sys.stderr)
        binary = rotel_binary()
        if "rotel" in args.scenarios:
            if binary is None:
                notes.append("rotel not installed: no driver-ceiling reference")
            else:
                print("running rotel reference ...", file=sys.stderr, flush=True)
                try:
                    runs += run_rotel(binary, bodies, work, args)
                except RuntimeError as e:
                    notes.append(f"rotel reference failed: {textwrap.shorten(str(e), 300)}")
    costs: list[str] = []
    if "pipeline" in args.scenarios:
        try:
            costs = processor_costs(processors, args)
        except Exception as e:  # the end-to-end numbers stand without the breakdown
            notes.append(
                f"processor cost breakdown failed: {type(e).__name__}: {textwrap.shorten(str(e), 200)}"
            )
    section = report(runs, notes, args, started, host, processors, costs)
    print(section)
    if not args.no_readme:
        update_readme(section)
        print(f"updated {README.relative_to(ROOT)}", file=sys.stderr)
    return 0 if runs else 1


if __name__ == "__main__":
    sys.exit(main())
