"""The file exporter: OTLP/JSON lines read back equal to what was exported."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pydantic import ValidationError

from exporters.file import FileExporter, FileExporterConfig, factory, read_records
from otel_receiver import otlp_json
from otel_receiver.component import REQUEST_TYPES, Batch, ComponentSettings, RequestContext, Signal
from otel_receiver.registry import REGISTRY
from otel_receiver.telemetry import SelfTelemetry

EXAMPLES = Path(__file__).parent / "fixtures" / "otlp-examples"


def _examples() -> list[Batch]:
    return [
        otlp_json.decode(ExportTraceServiceRequest, (EXAMPLES / "trace.json").read_bytes()),
        otlp_json.decode(ExportMetricsServiceRequest, (EXAMPLES / "metrics.json").read_bytes()),
        otlp_json.decode(ExportLogsServiceRequest, (EXAMPLES / "logs.json").read_bytes()),
        otlp_json.decode(ExportLogsServiceRequest, (EXAMPLES / "events.json").read_bytes()),
    ]


def _spans(n: int, name: str = "span", payload: str = "") -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i in range(n):
        span = scope.spans.add(name=f"{name}-{i}", trace_id=i.to_bytes(16, "big"), span_id=b"\x01" * 8)
        if payload:
            kv = span.attributes.add(key="payload")
            kv.value.string_value = payload
    return request


def _exporter(**config: object) -> FileExporter:
    settings = ComponentSettings("file/test", SelfTelemetry(), logging.getLogger("test"))
    return factory.create(FileExporterConfig.model_validate(config), settings)


def _decode_lines(path: Path) -> list[Batch]:
    out: list[Batch] = []
    for line in read_records(path):
        document_keys = line[:20]
        if document_keys.startswith(b'{"resourceSpans"'):
            out.append(otlp_json.decode(ExportTraceServiceRequest, line))
        elif document_keys.startswith(b'{"resourceMetrics"'):
            out.append(otlp_json.decode(ExportMetricsServiceRequest, line))
        else:
            out.append(otlp_json.decode(ExportLogsServiceRequest, line))
    return out


def test_registered_as_file() -> None:
    assert REGISTRY.factory("exporters", "file") is factory


def test_lines_read_back_equal_to_the_exported_requests(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.json"
    exporter = _exporter(path=str(target))
    batches = _examples()

    async def go() -> None:
        await exporter.start()
        for batch in batches:
            await exporter.export(batch, RequestContext())
            # flushed after every request: a reader sees it before shutdown
            assert target.read_bytes().endswith(b"}\n")
        await exporter.shutdown()

    asyncio.run(go())
    data = target.read_bytes()
    assert data.count(b"\n") == len(batches)
    assert _decode_lines(target) == batches
    assert b'"traceId":"5b8efff798038103d269b633813fc60c"' in data


def test_concurrent_exports_never_interleave(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    exporter = _exporter(path=str(target))
    batches = [_spans(20, name=f"req{r}", payload="x" * 2000) for r in range(60)]

    async def go() -> None:
        await exporter.start()
        await asyncio.gather(*(exporter.export(b, RequestContext()) for b in batches))
        await exporter.shutdown()

    asyncio.run(go())
    read_back = _decode_lines(target)
    assert len(read_back) == len(batches)
    key = ExportTraceServiceRequest.SerializeToString
    assert sorted(map(key, read_back)) == sorted(map(key, batches))


def test_append_and_truncate(tmp_path: Path) -> None:
    target = tmp_path / "out.json"

    def run_once(**config: object) -> None:
        exporter = _exporter(path=str(target), **config)

        async def go() -> None:
            await exporter.start()
            await exporter.export(_spans(1), RequestContext())
            await exporter.shutdown()

        asyncio.run(go())

    run_once()
    run_once()
    assert len(read_records(target)) == 2
    run_once(append=False)
    assert len(read_records(target)) == 1


def test_flush_interval_flushes_in_the_background(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    exporter = _exporter(path=str(target), flush_interval=0.05)

    async def go() -> None:
        await exporter.start()
        await exporter.export(_spans(3), RequestContext())
        for _ in range(100):
            if target.stat().st_size > 0:
                break
            await asyncio.sleep(0.02)
        assert _decode_lines(target) == [_spans(3)]
        await exporter.shutdown()

    asyncio.run(go())


def test_proto_format_is_length_prefixed(tmp_path: Path) -> None:
    target = tmp_path / "out.pb"
    exporter = _exporter(path=str(target), format="proto")
    batches = _examples()

    async def go() -> None:
        await exporter.start()
        for batch in batches:
            await exporter.export(batch, RequestContext())
        await exporter.shutdown()

    asyncio.run(go())
    records = read_records(target, "proto")
    signals = [Signal.TRACES, Signal.METRICS, Signal.LOGS, Signal.LOGS]
    assert [REQUEST_TYPES[s].FromString(r) for s, r in zip(signals, records, strict=True)] == batches


def test_rotation_by_size_keeps_max_backups(tmp_path: Path) -> None:
    target = tmp_path / "traces.json"
    exporter = _exporter(path=str(target), rotation={"max_megabytes": 1, "max_backups": 2})
    batch = _spans(40, payload="y" * 10_000)  # about 400 kB per line

    async def go() -> None:
        await exporter.start()
        for _ in range(12):
            await exporter.export(batch, RequestContext())
        await exporter.shutdown()

    asyncio.run(go())
    backups = sorted(p for p in tmp_path.iterdir() if p != target)
    assert len(backups) == 2
    assert all(p.name.startswith("traces-") and p.suffix == ".json" for p in backups)
    # Two 400 kB requests fit under 1 MiB: six files were written, the three oldest
    # were pruned beyond max_backups, the current file holds the last two requests.
    for path in [*backups, target]:
        assert path.stat().st_size <= 1024 * 1024
        assert _decode_lines(path) == [batch, batch]


def test_export_after_shutdown_fails(tmp_path: Path) -> None:
    exporter = _exporter(path=str(tmp_path / "x.json"))

    async def go() -> None:
        await exporter.start()
        await exporter.shutdown()
        with pytest.raises(RuntimeError):
            await exporter.export(_spans(1), RequestContext())

    asyncio.run(go())


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"path": ""},
        {"path": "x", "format": "xml"},
        {"path": "x", "flush_interval": -1},
        {"path": "x", "rotation": {"max_megabytes": 0}},
        {"path": "x", "compression": "zstd"},
    ],
)
def test_invalid_config(config: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FileExporterConfig.model_validate(config)
