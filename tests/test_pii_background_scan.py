"""pii_redaction's request scan on the prefilter's worker thread (``Prefilter.submit``).

The worker runs the same C scan as ``Prefilter.scan`` without the GIL, while the event
loop's thread decodes the request and serves others; ``BackgroundScans`` hands its results
to the receivers, which await them before the pipeline (``Processor.prescan``). What must
hold: the worker finds exactly what the scan finds, learning keys meanwhile corrupts
nothing, a forked child gets the jobs its parent left, the bytes are held until their
result is collected, and through real receivers (HTTP and gRPC, concurrent requests) the
output is the one the in-line scan gives, with no in-line scan of a large request.
"""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.workload import generate_trace_requests
from exporters.file.exporter import read_records
from otel_receiver.component import Processor, RequestContext, Signal
from otel_receiver.ingest import Ingest
from otel_receiver.pipeline import Pipeline
from otel_receiver.telemetry import SelfTelemetry
from processors.pii_redaction.engine import BackgroundScans, PrefilteredScanner
from processors.pii_redaction.processor import BACKGROUND_SCAN_MIN_BYTES, PiiRedactionProcessor
from tests import test_pii_prefilter as prefilter_tests
from tests.conftest import RunningReceiver
from tests.test_pii_prefilter import fuzz_buffers

_prefilter = pytest.importorskip("processors.pii_redaction._prefilter")

TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def make_processor(**config: object) -> PiiRedactionProcessor:
    proc = prefilter_tests.make_processor(**config)
    assert isinstance(proc, PiiRedactionProcessor)
    return proc


class CountingPrefilter:
    """Counts the scanner's in-line scans (the sizes scanned); the processor's background
    scans keep the real prefilter."""

    def __init__(self, real: Any, scanned: list[int]) -> None:
        self.real, self.scanned = real, scanned

    def scan(self, buf: bytes) -> Any:
        self.scanned.append(len(buf))
        return self.real.scan(buf)

    def learn(self, key: bytes, hit: bool) -> None:
        self.real.learn(key, hit)


def count_inline_scans(proc: PiiRedactionProcessor, scanned: list[int]) -> None:
    assert isinstance(proc.scanner, PrefilteredScanner)
    proc.scanner._prefilter = CountingPrefilter(proc.scanner._prefilter, scanned)


def prefilter_of(proc: PiiRedactionProcessor) -> Any:
    assert isinstance(proc.scanner, PrefilteredScanner)
    return proc.scanner._prefilter


def collect(prefilter: Any, count: int, timeout: float = 30) -> dict[int, Any]:
    """``count`` results, waiting on ``ready_fd`` as an event loop would."""
    results: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    while len(results) < count:
        assert time.monotonic() < deadline, f"{len(results)} of {count} results after {timeout} s"
        select.select([prefilter.ready_fd()], [], [], 1)
        results.update(prefilter.completed())
    return results


def workload_bodies(count: int, fraction: float, seed: int = 5) -> list[bytes]:
    return [r.SerializeToString() for r in generate_trace_requests(count, 100, seed, fraction)]


def test_the_worker_finds_what_the_scan_finds() -> None:
    prefilter = prefilter_of(make_processor(blocked_key_patterns=[r"(?i).*token.*"]))
    buffers = fuzz_buffers(seed=3, count=1500) + workload_bodies(20, 0.1) + workload_bodies(5, 1.0)
    for buf in buffers:  # every key decided once, as the processor does before its next scans
        for _, _, key_start, key_end in prefilter.scan(buf)[2]:
            prefilter.learn(buf[key_start:key_end], b"token" in buf[key_start:key_end].lower())
    jobs = [prefilter.submit(buf) for buf in buffers]
    assert len(set(jobs)) == len(jobs)
    results = collect(prefilter, len(jobs))
    mismatched = [buf for job, buf in zip(jobs, buffers, strict=True) if results[job] != prefilter.scan(buf)]
    assert not mismatched, f"{len(mismatched)} buffers scanned differently, first {mismatched[0][:80]!r}"
    assert any(result[0] for result in results.values()) and any(result[1] for result in results.values())


def test_results_come_in_submission_order_and_the_pipe_empties() -> None:
    prefilter = prefilter_of(make_processor())
    bodies = workload_bodies(10, 0.5)
    jobs = [prefilter.submit(body) for body in bodies]
    order: list[int] = []
    deadline = time.monotonic() + 30
    while len(order) < len(jobs) and time.monotonic() < deadline:
        select.select([prefilter.ready_fd()], [], [], 1)
        order += [job for job, _ in prefilter.completed()]
    assert order == jobs
    # Nothing left. The pipe is emptied before the results are taken (a result done after
    # that must wake the loop again), so a byte for a result already taken may be left: one
    # collection then finds nothing and empties it.
    assert prefilter.completed() == []
    assert select.select([prefilter.ready_fd()], [], [], 0.05)[0] == []


def test_keys_learnt_while_the_worker_scans_corrupt_nothing() -> None:
    """learn() grows and clears the key table under the lock the worker scans with; the
    windows do not depend on keys, so each job's must equal a scan's whatever was learnt."""
    prefilter = prefilter_of(make_processor())
    bodies = workload_bodies(30, 0.3, seed=9)
    expected = [prefilter.scan(body)[0] for body in bodies]
    stop = threading.Event()

    def learn_many() -> None:
        n = 0
        while not stop.is_set():
            prefilter.learn(f"key.{n}.{'x' * (n % 60)}".encode(), n % 3 == 0)  # long keys live apart
            n += 1

    learner = threading.Thread(target=learn_many)
    learner.start()
    try:
        for _ in range(5):
            jobs = [prefilter.submit(body) for body in bodies]
            results = collect(prefilter, len(jobs))
            assert [results[job][0] for job in jobs] == expected
    finally:
        stop.set()
        learner.join()
    assert prefilter.key_count() > 0


# Run under helgrind with the extension alone (python -S: no site, ~4 s instead of ~45).
_RACE_SCRIPT = """
import importlib.util, select, sys
spec = importlib.util.spec_from_file_location("_prefilter", sys.argv[1])
P = importlib.util.module_from_spec(spec)
spec.loader.exec_module(P)
pf = P.Prefilter(sum(P.FAMILIES.values()))
body = b'\\x0a\\x0bapi.tokenxx\\x12\\x05card 4111 1111 1111 1111 "password": x ' * 50
jobs = [pf.submit(body) for _ in range(4)]
for n in range(600):  # the table grows while the worker reads it
    pf.learn(b"key.%d" % n, n % 2 == 0)
    if n % 150 == 0:
        pf.scan(body)
done = 0
while done < len(jobs):
    select.select([pf.ready_fd()], [], [], 1)
    done += len(pf.completed())
doomed = P.Prefilter(sum(P.FAMILIES.values()))
for _ in range(3):
    doomed.submit(body)
del doomed  # joins its worker, frees the jobs
print("ran")
"""


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed (tests/system-deps.sh)")
@pytest.mark.timeout(180)
def test_helgrind_finds_no_data_race_between_the_worker_and_the_gil_holder(tmp_path: Path) -> None:
    """Races rarely show in a test's results; helgrind sees every unordered pair of
    accesses. Dropping the lock around the worker's scan gives 8-14 reports here."""
    script = tmp_path / "race.py"
    script.write_text(_RACE_SCRIPT)
    command = ["valgrind", "--tool=helgrind", "--error-exitcode=3", sys.executable, "-S"]
    proc = subprocess.run(
        [*command, str(script), _prefilter.__file__],
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert "ran" in proc.stdout, proc.stderr[-3000:]
    races = proc.stderr.count("Possible data race")
    assert proc.returncode == 0 and races == 0, proc.stderr[-6000:]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_scans_the_jobs_its_parent_left() -> None:
    prefilter = prefilter_of(make_processor())
    bodies = workload_bodies(40, 0.2, seed=13)
    # The first one takes the worker ~100 ms: it is scanning it when the child is forked.
    bodies[0] = b"".join(bodies) * 12
    expected = [prefilter.scan(body) for body in bodies]
    jobs = [prefilter.submit(body) for body in bodies]
    parent_fd = prefilter.ready_fd()
    time.sleep(0.03)
    pid = os.fork()
    if pid == 0:  # the child: its worker stayed in the parent
        code = 1
        try:
            assert prefilter.ready_fd() != parent_fd
            results = collect(prefilter, len(jobs), timeout=20)
            later = prefilter.submit(bodies[0])  # and a worker of its own starts
            results.update(collect(prefilter, 1, timeout=20))
            if [results[job] for job in jobs] == expected and results[later] == expected[0]:
                code = 0
        finally:
            os._exit(code)
    results = collect(prefilter, len(jobs))
    assert [results[job] for job in jobs] == expected
    assert os.waitpid(pid, 0)[1] == 0, "the child's results differ from its parent's scans"


def test_the_bytes_are_held_until_their_result_is_collected() -> None:
    body = workload_bodies(1, 1.0)[0]
    families = sum(_prefilter.FAMILIES.values())
    prefilter = _prefilter.Prefilter(families)  # no processor: nothing else holds it
    before = sys.getrefcount(body)
    job = prefilter.submit(body)
    assert sys.getrefcount(body) == before + 1
    assert job in collect(prefilter, 1)
    assert sys.getrefcount(body) == before
    # A prefilter freed with jobs pending or done joins its worker and lets their bytes go.
    doomed = _prefilter.Prefilter(families)
    for _ in range(20):
        doomed.submit(body)
    assert sys.getrefcount(body) == before + 20
    del doomed
    assert sys.getrefcount(body) == before


def test_background_scans_serve_the_processor_and_fall_back_when_the_wire_changed() -> None:
    proc = make_processor()
    reference = make_processor()
    inline_scans: list[int] = []
    count_inline_scans(proc, inline_scans)
    bodies = workload_bodies(6, 1.0, seed=21)
    assert all(len(body) >= BACKGROUND_SCAN_MIN_BYTES for body in bodies)

    async def through(body: bytes, wire: bytes) -> ExportTraceServiceRequest:
        pending = proc.prescan(Signal.TRACES, body)
        assert pending is not None
        context = RequestContext(prescans={proc: (body, await pending)})
        batch = ExportTraceServiceRequest.FromString(body)
        context.set_wire(batch, wire, from_client=True)
        proc.process(batch, context)
        return batch

    async def run() -> None:
        for body in bodies:
            expected = ExportTraceServiceRequest.FromString(body)
            reference.process(expected, RequestContext())
            assert await through(body, body) == expected
            assert inline_scans == [], "the received bytes were scanned again in line"
            # Equal bytes that are not the ones scanned: scanned again, in line.
            assert await through(body, bytes(bytearray(body))) == expected
            assert inline_scans == [len(body)]
            inline_scans.clear()

    asyncio.run(run())
    asyncio.run(run())  # a new loop: the pipe is watched from it
    assert proc.prescan(Signal.TRACES, b"\x0a\x00") is None  # small requests scan in line


def test_closing_hands_waiting_requests_none() -> None:
    proc = make_processor()
    background = BackgroundScans(prefilter_of(proc))
    body = workload_bodies(1, 1.0)[0]

    async def run() -> list[Any]:
        futures = [background.start(body) for _ in range(50)]
        background.close()
        return list(await asyncio.gather(*futures))

    results = asyncio.run(run())
    assert all(result is None for result in results)


def test_a_loop_in_another_thread_hands_its_waiting_requests_over() -> None:
    """A second loop takes the pipe over while the first, in another thread, still waits
    for a scan: that request gets None (its processor then scans in line), through its own
    loop; the second loop's gets its result."""
    prefilter = prefilter_of(make_processor())
    background = BackgroundScans(prefilter)
    bodies = workload_bodies(40, 0.2, seed=17)
    large = b"".join(bodies) * 12  # ~100 ms of scanning: still waiting when B takes over
    first = asyncio.new_event_loop()
    thread = threading.Thread(target=first.run_forever)
    thread.start()
    try:

        async def start_large() -> asyncio.Future[Any]:
            return background.start(large)

        waiting = asyncio.run_coroutine_threadsafe(start_large(), first).result(10)

        async def in_second_loop() -> Any:
            return await background.start(bodies[0])

        assert asyncio.run(in_second_loop()) == prefilter.scan(bodies[0])

        async def outcome() -> Any:
            return await waiting

        assert asyncio.run_coroutine_threadsafe(outcome(), first).result(10) is None
    finally:
        first.call_soon_threadsafe(first.stop)
        thread.join(10)
        first.close()


class _NoReaders(asyncio.SelectorEventLoop):
    def add_reader(self, *args: Any) -> None:
        raise NotImplementedError


def test_a_loop_that_cannot_watch_the_pipe_scans_in_line() -> None:
    proc = make_processor()
    body = workload_bodies(1, 0.1)[0]

    async def run() -> list[object]:
        return [proc.prescan(Signal.TRACES, body) for _ in range(2)]

    with asyncio.Runner(loop_factory=_NoReaders) as runner:
        assert runner.run(run()) == [None, None]


class _Touching(Processor):
    """Stands for any processor before pii_redaction; it changes nothing."""

    signals = frozenset({Signal.TRACES})

    def __init__(self, keeps_wire: bool) -> None:
        self.keeps_wire = keeps_wire  # type: ignore[misc]


@pytest.mark.parametrize("keeps_wire", [True, False])
def test_prescans_start_only_where_the_received_bytes_reach(keeps_wire: bool) -> None:
    proc = make_processor()
    processors = [("before", _Touching(keeps_wire)), ("pii", proc)]
    pipeline = Pipeline("traces", Signal.TRACES, processors, [], SelfTelemetry())
    ingest = Ingest("otlp", {Signal.TRACES: [pipeline], Signal.METRICS: []}, SelfTelemetry())
    body = workload_bodies(1, 0.1)[0]

    async def run() -> int:
        started = ingest.start_prescans(Signal.TRACES, body)
        for _, pending in started:
            await pending
        return len(started) + len(ingest.start_prescans(Signal.METRICS, body))

    assert asyncio.run(run()) == (1 if keeps_wire else 0)


RECEIVER_YAML = """
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0"}}
      http: {{endpoint: "127.0.0.1:0"}}
processors:
  pii_redaction:
exporters:
  file:
    path: {path}
    format: proto
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [pii_redaction]
      exporters: [file]
"""


def spans_by_id(bodies: list[bytes]) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for body in bodies:
        for rs in ExportTraceServiceRequest.FromString(body).resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    out[span.span_id] = span.SerializeToString(deterministic=True)
    return out


@pytest.mark.timeout(120)
def test_real_receivers_redact_concurrent_large_requests_as_the_inline_scan_does(
    tmp_path: Path, receiver_factory: Callable[..., RunningReceiver]
) -> None:
    out = tmp_path / "traces.bin"
    running = receiver_factory(RECEIVER_YAML.format(path=out))
    proc = next(p for _, p in running.service._processors if isinstance(p, PiiRedactionProcessor))
    inline: list[int] = []
    running.call(lambda: count_inline_scans(proc, inline))
    bodies = workload_bodies(24, 0.3, seed=31)
    assert all(len(body) >= BACKGROUND_SCAN_MIN_BYTES for body in bodies)

    def post(body: bytes) -> None:
        req = urllib.request.Request(
            running.http_url + "/v1/traces",
            data=body,
            method="POST",
            headers={"Content-Type": "application/x-protobuf"},
        )
        with urllib.request.urlopen(req, timeout=30) as response:
            assert response.status == 200

    def export(body: bytes) -> None:
        with grpc.insecure_channel(running.grpc_endpoint) as channel:
            channel.unary_unary(TRACES)(body, timeout=30)

    threads = [
        threading.Thread(target=post if i % 2 else export, args=(body,)) for i, body in enumerate(bodies)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    running.stop()

    reference = make_processor()
    expected = []
    for body in bodies:
        batch = ExportTraceServiceRequest.FromString(body)
        reference.process(batch, RequestContext())
        expected.append(batch.SerializeToString())
    got = spans_by_id(read_records(out, "proto"))
    assert got == spans_by_id(expected)
    assert inline == [], "large requests were scanned in line"
