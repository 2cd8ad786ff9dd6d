"""The debug exporter: counts (basic), one line per item (normal), every field (detailed)."""

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

from exporters.debug import DebugExporter, DebugExporterConfig, factory
from otel_receiver.component import Batch, ComponentSettings, RequestContext, Signal
from otel_receiver.otlp_json import decode
from otel_receiver.registry import REGISTRY
from otel_receiver.telemetry import SelfTelemetry

EXAMPLES = Path(__file__).parent / "fixtures" / "otlp-examples"


def _examples() -> list[Batch]:
    return [
        decode(ExportTraceServiceRequest, (EXAMPLES / "trace.json").read_bytes()),
        decode(ExportMetricsServiceRequest, (EXAMPLES / "metrics.json").read_bytes()),
        decode(ExportLogsServiceRequest, (EXAMPLES / "logs.json").read_bytes()),
    ]


def _exporter(tmp_path: Path, **config: object) -> DebugExporter:
    if "output" in config and config["output"] not in ("stdout", "stderr"):
        config["output"] = str(tmp_path / str(config["output"]))
    settings = ComponentSettings(
        "debug/test", SelfTelemetry(), logging.getLogger("test"), config_dir=str(tmp_path)
    )
    return factory.create(DebugExporterConfig.model_validate(config), settings)


def _run(exporter: DebugExporter, batches: list[Batch]) -> None:
    async def go() -> None:
        await exporter.start()
        for batch in batches:
            await exporter.export(batch, RequestContext())
        await exporter.shutdown()

    asyncio.run(go())


def test_registered_as_debug() -> None:
    assert REGISTRY.factory("exporters", "debug") is factory


def test_basic_writes_one_count_line_per_batch_to_a_file(tmp_path: Path) -> None:
    exporter = _exporter(tmp_path, output="out/debug.txt")
    _run(exporter, _examples())
    lines = (tmp_path / "out" / "debug.txt").read_text().splitlines()
    assert lines == [
        "debug/test traces: 1 resource spans, 1 spans",
        "debug/test metrics: 1 resource metrics, 4 data points",
        "debug/test logs: 1 resource logs, 1 log records",
    ]
    assert exporter.items == {Signal.TRACES: 1, Signal.METRICS: 4, Signal.LOGS: 1}
    assert exporter.batches == {Signal.TRACES: 1, Signal.METRICS: 1, Signal.LOGS: 1}
    assert "basic to" in exporter.describe()


def test_file_output_appends(tmp_path: Path) -> None:
    target = tmp_path / "debug.txt"
    target.write_text("earlier\n")
    _run(_exporter(tmp_path, output=str(target)), _examples()[:1])
    assert target.read_text().splitlines()[0] == "earlier"
    assert len(target.read_text().splitlines()) == 2


def test_normal_writes_one_line_per_item(tmp_path: Path) -> None:
    _run(_exporter(tmp_path, verbosity="normal", output="d.txt"), _examples())
    text = (tmp_path / "d.txt").read_text()
    assert (
        "I'm a server span 5b8efff798038103d269b633813fc60c eee19b7ec3c1b174 Server 1000.000ms Unset "
        "my.span.attr=Str(some value)"
    ) in text
    assert "my.histogram{my.histogram.attr=Str(some value)} histogram count=2 sum=2.0 min=0.0 max=2.0" in text
    assert "my.counter{my.counter.attr=Str(some value)} sum 5.0" in text
    assert "Information Str(Example log record)" in text
    assert 'array.attribute=Slice(["many","values"])' in text


def test_detailed_writes_every_field(tmp_path: Path) -> None:
    _run(_exporter(tmp_path, verbosity="detailed", output="d.txt"), _examples())
    text = (tmp_path / "d.txt").read_text()
    for expected in [
        "    Trace ID       : 5b8efff798038103d269b633813fc60c",
        "    Parent ID      : eee19b7ec3c1b173",
        "    Start time     : 2018-12-13 14:51:00.000000000 +0000 UTC",
        "     -> my.span.attr: Str(some value)",
        "InstrumentationScope my.library 1.0.0",
        "     -> DataType: exponential_histogram",
        "positive: offset=1 bucket_counts=[0, 2]",
        "SeverityNumber: INFO2(10)",
        '     -> map.attribute: Map({"some.map.key":"some value"})',
        "     -> int.attribute: Int(10)",
        "Span ID: eee19b7ec3c1b174",
    ]:
        assert expected in text


def test_stdout_and_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(_exporter(tmp_path, output="stdout"), _examples()[:1])
    _run(_exporter(tmp_path, output="stderr"), _examples()[2:])
    captured = capsys.readouterr()
    assert captured.out == "debug/test traces: 1 resource spans, 1 spans\n"
    assert captured.err == "debug/test logs: 1 resource logs, 1 log records\n"


def test_sampling_writes_initial_batches_then_every_nth(tmp_path: Path) -> None:
    exporter = _exporter(tmp_path, output="d.txt", sampling_initial=2, sampling_thereafter=3)
    # 11 batches well within one second: 2 initial, then the 3rd, 6th and 9th of the rest.
    _run(exporter, _examples()[:1] * 11)
    assert len((tmp_path / "d.txt").read_text().splitlines()) == 5
    assert exporter.items[Signal.TRACES] == 11


@pytest.mark.parametrize(
    "config",
    [{"verbosity": "loud"}, {"output": ""}, {"colour": True}, {"sampling_thereafter": 0}],
)
def test_invalid_config(config: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DebugExporterConfig.model_validate(config)
