"""The batch processor: size and timeout triggers, splitting, tenant separation, shutdown."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from pydantic import ValidationError

from otel_receiver.component import Batch, ComponentSettings, RequestContext, count_items
from otel_receiver.registry import REGISTRY
from otel_receiver.telemetry import SelfTelemetry
from processors.batch import BatchProcessor, BatchProcessorConfig, factory, split

Forwarded = list[tuple[Batch, RequestContext]]


def _processor(
    telemetry: SelfTelemetry | None = None, component_id: str = "batch", **config: Any
) -> tuple[BatchProcessor, Forwarded]:
    settings = ComponentSettings(component_id, telemetry or SelfTelemetry(), logging.getLogger("test"))
    processor = factory.create(BatchProcessorConfig.model_validate(config), settings)
    forwarded: Forwarded = []
    processor.forward = lambda batch, context: forwarded.append((batch, context))
    return processor, forwarded


def _traces(prefix: str, n: int, resources: int = 1) -> ExportTraceServiceRequest:
    """``resources`` resources, each one scope with ``n`` spans named prefix-r-i."""
    request = ExportTraceServiceRequest()
    for r in range(resources):
        rs = request.resource_spans.add()
        rs.resource.attributes.add(key="service.name").value.string_value = f"svc-{prefix}-{r}"
        ss = rs.scope_spans.add()
        ss.scope.name = "scope"
        for i in range(n):
            ss.spans.add(name=f"{prefix}-{r}-{i}", span_id=i.to_bytes(8, "big"))
    return request


def _span_names(batch: Batch) -> list[str]:
    assert isinstance(batch, ExportTraceServiceRequest)
    return [s.name for rs in batch.resource_spans for ss in rs.scope_spans for s in ss.spans]


def _ctx(tenant: str | None = None, actor: str | None = None, received_at_ns: int = 1) -> RequestContext:
    return RequestContext(transport="grpc", tenant=tenant, actor=actor, received_at_ns=received_at_ns)


def test_registered_as_batch() -> None:
    assert REGISTRY.factory("processors", "batch") is factory


def test_size_trigger_merges_requests_in_order() -> None:
    processor, forwarded = _processor(send_batch_size=10)
    for r in range(3):
        assert processor.process(_traces(f"r{r}", 3), _ctx()) is None
    assert forwarded == []
    assert processor.pending_items == 9
    processor.process(_traces("r3", 3), _ctx())
    assert len(forwarded) == 1
    batch, context = forwarded[0]
    assert count_items(batch) == 12
    assert _span_names(batch) == [f"r{r}-0-{i}" for r in range(4) for i in range(3)]
    assert isinstance(batch, ExportTraceServiceRequest) and len(batch.resource_spans) == 4
    assert context.transport == "grpc"
    assert processor.pending_items == 0


def test_a_single_full_request_is_forwarded_without_copying() -> None:
    processor, forwarded = _processor(send_batch_size=5)
    request = _traces("a", 5)
    processor.process(request, _ctx())
    assert forwarded[0][0] is request


def test_max_size_splits_at_span_granularity() -> None:
    processor, forwarded = _processor(send_batch_size=10, send_batch_max_size=10)
    processor.process(_traces("a", 25), _ctx())
    assert [count_items(b) for b, _ in forwarded] == [10, 10]
    assert processor.pending_items == 5
    for batch, _ in forwarded:
        assert isinstance(batch, ExportTraceServiceRequest)
        rs = batch.resource_spans[0]
        assert rs.resource.attributes[0].value.string_value == "svc-a-0"
        assert rs.scope_spans[0].scope.name == "scope"
    asyncio.run(processor.shutdown())
    assert [count_items(b) for b, _ in forwarded] == [10, 10, 5]
    assert [n for b, _ in forwarded for n in _span_names(b)] == [f"a-0-{i}" for i in range(25)]


def test_collector_semantics_send_while_at_least_send_batch_size() -> None:
    # size 100, max 150, 320 waiting: sends 150 and 150, keeps 20 for the timeout.
    processor, forwarded = _processor(send_batch_size=100, send_batch_max_size=150)
    processor.process(_traces("a", 60), _ctx())
    processor.process(_traces("b", 260), _ctx())
    assert [count_items(b) for b, _ in forwarded] == [150, 150]
    assert processor.pending_items == 20
    first = _span_names(forwarded[0][0])
    assert first[:60] == [f"a-0-{i}" for i in range(60)] and first[60] == "b-0-0"


def test_without_max_size_everything_waiting_goes_in_one_batch() -> None:
    processor, forwarded = _processor(send_batch_size=100)
    processor.process(_traces("a", 60), _ctx())
    processor.process(_traces("b", 260), _ctx())
    assert [count_items(b) for b, _ in forwarded] == [320]


def test_tenants_and_actors_are_never_mixed() -> None:
    processor, forwarded = _processor(send_batch_size=4)
    identities = [("acme", "bot"), ("globex", "bot"), ("acme", "alice"), (None, None)]
    for round_ in range(4):
        for tenant, actor in identities:
            processor.process(_traces(f"{tenant}.{actor}.{round_}", 1), _ctx(tenant, actor))
    assert len(forwarded) == 4
    for batch, context in forwarded:
        assert count_items(batch) == 4
        names = _span_names(batch)
        assert all(n.startswith(f"{context.tenant}.{context.actor}.") for n in names)
        assert [n.split(".")[2].split("-")[0] for n in names] == ["0", "1", "2", "3"]
    assert {(c.tenant, c.actor) for _, c in forwarded} == set(identities)


def test_roles_separate_batches_too() -> None:
    processor, forwarded = _processor(send_batch_size=2)
    processor.process(_traces("a", 1), RequestContext(tenant="t", roles=("ingest",)))
    processor.process(_traces("b", 1), RequestContext(tenant="t", roles=("admin",)))
    assert forwarded == []
    asyncio.run(processor.shutdown())
    assert sorted(c.roles for _, c in forwarded) == [("admin",), ("ingest",)]


def test_signals_are_buffered_separately() -> None:
    processor, forwarded = _processor(send_batch_size=2)
    logs = ExportLogsServiceRequest()
    logs.resource_logs.add().scope_logs.add().log_records.add().severity_text = "INFO"
    processor.process(_traces("a", 1), _ctx())
    processor.process(logs, _ctx())
    assert forwarded == []
    processor.process(logs, _ctx())
    assert len(forwarded) == 1 and isinstance(forwarded[0][0], ExportLogsServiceRequest)


def test_merged_context_keeps_identity_and_earliest_receive_time() -> None:
    processor, forwarded = _processor(send_batch_size=2)
    processor.process(_traces("a", 1), RequestContext(transport="grpc", tenant="t", received_at_ns=50))
    processor.process(_traces("b", 1), RequestContext(transport="http", tenant="t", received_at_ns=20))
    context = forwarded[0][1]
    assert context.tenant == "t" and context.received_at_ns == 20 and context.transport == "internal"


def test_empty_requests_are_dropped_and_itemless_ones_ride_along() -> None:
    processor, forwarded = _processor(send_batch_size=2)
    processor.process(ExportTraceServiceRequest(), _ctx())
    assert processor.pending_items == 0 and forwarded == []
    itemless = ExportTraceServiceRequest()
    itemless.resource_spans.add().resource.attributes.add(key="k").value.string_value = "v"
    processor.process(_traces("a", 1), _ctx())
    processor.process(itemless, _ctx())
    processor.process(_traces("b", 1), _ctx())
    assert len(forwarded) == 1
    assert len(forwarded[0][0].resource_spans) == 3


def test_timeout_zero_forwards_every_request_at_once() -> None:
    processor, forwarded = _processor(send_batch_size=100, send_batch_max_size=100, timeout=0)
    processor.process(_traces("a", 3), _ctx())
    processor.process(_traces("b", 250), _ctx())
    assert [count_items(b) for b, _ in forwarded] == [3, 100, 100, 50]


def test_timeout_flushes_on_a_real_event_loop() -> None:
    telemetry = SelfTelemetry()
    processor, forwarded = _processor(telemetry, send_batch_size=1000, timeout="100ms")

    async def go() -> None:
        await processor.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        processor.process(_traces("a", 3), _ctx())
        processor.process(_traces("b", 2), _ctx("other"))
        await asyncio.sleep(0.03)
        assert forwarded == []  # not before the timeout
        while len(forwarded) < 2 and loop.time() - started < 5:
            await asyncio.sleep(0.01)
        waited = loop.time() - started
        assert 0.09 <= waited < 2.0
        assert sorted(count_items(b) for b, _ in forwarded) == [2, 3]
        # the timer keeps running for later requests
        processor.process(_traces("c", 1), _ctx())
        while len(forwarded) < 3 and loop.time() - started < 5:
            await asyncio.sleep(0.01)
        assert _span_names(forwarded[2][0]) == ["c-0-0"]
        await processor.shutdown()

    asyncio.run(go())
    assert (
        telemetry.value("otel_receiver_batch_sends_total", {"processor": "batch", "trigger": "timeout"}) == 3
    )
    assert telemetry.value("otel_receiver_batch_pending_items", {"processor": "batch"}) == 0


def test_shutdown_flushes_everything_and_later_requests_pass_straight_through() -> None:
    telemetry = SelfTelemetry()
    processor, forwarded = _processor(telemetry, send_batch_size=1000, timeout=60)

    async def go() -> None:
        await processor.start()
        for tenant in ("a", "b", "c"):
            processor.process(_traces(tenant, 7), _ctx(tenant))
        assert forwarded == []
        await processor.shutdown()

    asyncio.run(go())
    assert sorted((c.tenant, count_items(b)) for b, c in forwarded) == [("a", 7), ("b", 7), ("c", 7)]
    processor.process(_traces("late", 1), _ctx())
    assert _span_names(forwarded[-1][0]) == ["late-0-0"]
    assert (
        telemetry.value("otel_receiver_batch_sends_total", {"processor": "batch", "trigger": "shutdown"}) == 4
    )


def test_two_processors_share_one_registry() -> None:
    telemetry = SelfTelemetry()
    first, _ = _processor(telemetry, component_id="batch", send_batch_size=1)
    second, _ = _processor(telemetry, component_id="batch/2", send_batch_size=1)
    first.process(_traces("a", 1), _ctx())
    second.process(_traces("a", 3), _ctx())
    second.process(_traces("a", 3), _ctx())
    assert telemetry.value("otel_receiver_batch_sends_total", {"processor": "batch", "trigger": "size"}) == 1
    assert (
        telemetry.value("otel_receiver_batch_sends_total", {"processor": "batch/2", "trigger": "size"}) == 2
    )
    assert (
        telemetry.value("otel_receiver_batch_send_size_sum", {"processor": "batch/2", "signal": "traces"})
        == 6
    )


def _metrics_request() -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = "svc"
    sm = rm.scope_metrics.add()
    sm.scope.name = "meter"
    gauge = sm.metrics.add(name="g", unit="1", description="a gauge")
    for i in range(5):
        gauge.gauge.data_points.add(as_int=i)
    total = sm.metrics.add(name="s", unit="By")
    total.sum.is_monotonic = True
    total.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    for i in range(3):
        total.sum.data_points.add(as_double=i + 0.5)
    hist = sm.metrics.add(name="h")
    hist.histogram.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    for i in range(2):
        hist.histogram.data_points.add(count=i, bucket_counts=[i], explicit_bounds=[])
    return request


def test_metrics_split_at_data_point_granularity() -> None:
    processor, forwarded = _processor(send_batch_size=4, send_batch_max_size=4)
    processor.process(_metrics_request(), _ctx())
    asyncio.run(processor.shutdown())
    assert [count_items(b) for b, _ in forwarded] == [4, 4, 2]
    first, second, third = (b for b, _ in forwarded)
    assert isinstance(first, ExportMetricsServiceRequest)
    assert isinstance(second, ExportMetricsServiceRequest)
    assert isinstance(third, ExportMetricsServiceRequest)
    metrics = second.resource_metrics[0].scope_metrics[0].metrics
    assert [m.name for m in metrics] == ["g", "s"]
    assert [p.as_int for p in metrics[0].gauge.data_points] == [4]
    assert metrics[0].unit == "1" and metrics[0].description == "a gauge"
    assert metrics[1].sum.is_monotonic
    assert metrics[1].sum.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    assert [p.as_double for p in metrics[1].sum.data_points] == [0.5, 1.5, 2.5]
    assert second.resource_metrics[0].scope_metrics[0].scope.name == "meter"
    last = third.resource_metrics[0].scope_metrics[0].metrics
    assert [m.name for m in last] == ["h"]
    assert last[0].histogram.aggregation_temporality == AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA


# --- split: property test over random request shapes -----------------------------------


def _flatten(batch: Batch) -> list[tuple[bytes, ...]]:
    """Every item with its resource, scope (and metric shell): equal before and after a split."""
    out: list[tuple[bytes, ...]] = []
    if isinstance(batch, ExportTraceServiceRequest):
        for rs in batch.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    out.append(
                        (
                            rs.resource.SerializeToString(),
                            ss.scope.SerializeToString(),
                            span.SerializeToString(),
                        )
                    )
    elif isinstance(batch, ExportMetricsServiceRequest):
        for rm in batch.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    if kind is None:
                        continue
                    data = getattr(metric, kind)
                    for point in data.data_points:
                        out.append(
                            (
                                rm.resource.SerializeToString(),
                                sm.scope.SerializeToString(),
                                metric.name.encode(),
                                str(getattr(data, "aggregation_temporality", "")).encode(),
                                point.SerializeToString(),
                            )
                        )
    else:
        for rl in batch.resource_logs:
            for sl in rl.scope_logs:
                for record in sl.log_records:
                    out.append(
                        (
                            rl.resource.SerializeToString(),
                            sl.scope.SerializeToString(),
                            record.SerializeToString(),
                        )
                    )
    return out


@st.composite
def _requests(draw: st.DrawFn) -> Batch:
    kind = draw(st.sampled_from(["traces", "metrics", "logs"]))
    counter = 0
    if kind == "traces":
        traces = ExportTraceServiceRequest()
        for r in range(draw(st.integers(1, 3))):
            rs = traces.resource_spans.add(schema_url=f"r{r}")
            for s in range(draw(st.integers(0, 3))):
                ss = rs.scope_spans.add()
                ss.scope.name = f"s{r}.{s}"
                for _ in range(draw(st.integers(0, 4))):
                    counter += 1
                    ss.spans.add(name=str(counter))
        return traces
    if kind == "logs":
        logs = ExportLogsServiceRequest()
        for r in range(draw(st.integers(1, 3))):
            rl = logs.resource_logs.add(schema_url=f"r{r}")
            for s in range(draw(st.integers(0, 3))):
                sl = rl.scope_logs.add()
                sl.scope.name = f"s{r}.{s}"
                for _ in range(draw(st.integers(0, 4))):
                    counter += 1
                    sl.log_records.add(severity_text=str(counter))
        return logs
    metrics = ExportMetricsServiceRequest()
    for r in range(draw(st.integers(1, 3))):
        rm = metrics.resource_metrics.add(schema_url=f"r{r}")
        for s in range(draw(st.integers(0, 2))):
            sm = rm.scope_metrics.add()
            sm.scope.name = f"s{r}.{s}"
            for m in range(draw(st.integers(0, 3))):
                metric = sm.metrics.add(name=f"m{r}.{s}.{m}")
                data_kind = draw(
                    st.sampled_from([None, "gauge", "sum", "histogram", "exponential_histogram", "summary"])
                )
                if data_kind is None:
                    continue
                data = getattr(metric, data_kind)
                data.SetInParent()
                if data_kind in ("sum", "histogram", "exponential_histogram"):
                    data.aggregation_temporality = draw(st.sampled_from([1, 2]))
                for _ in range(draw(st.integers(0, 4))):
                    counter += 1
                    data.data_points.add(time_unix_nano=counter)
    return metrics


@settings(max_examples=200, deadline=None)
@given(_requests(), st.data())
def test_split_preserves_every_item_in_order(request: Batch, data: st.DataObject) -> None:
    total = count_items(request)
    if total < 2:
        return
    items = data.draw(st.integers(1, total - 1))
    before = request.SerializeToString()
    head, tail = split(request, items)
    assert request.SerializeToString() == before
    assert count_items(head) == items
    assert count_items(tail) == total - items
    assert _flatten(head) + _flatten(tail) == _flatten(request)


# --- config ---------------------------------------------------------------------------


def test_config_defaults_are_the_collectors() -> None:
    config = BatchProcessorConfig()
    assert (config.send_batch_size, config.send_batch_max_size, config.timeout) == (8192, 0, 0.2)


@pytest.mark.parametrize(
    ("text", "seconds"), [("200ms", 0.2), ("1s", 1.0), ("1.5m", 90.0), (2, 2.0), ("0", 0.0)]
)
def test_timeout_accepts_go_durations(text: object, seconds: float) -> None:
    assert BatchProcessorConfig.model_validate({"timeout": text}).timeout == pytest.approx(seconds)


@pytest.mark.parametrize(
    "config",
    [
        {"send_batch_size": 100, "send_batch_max_size": 50},
        {"send_batch_size": 0},
        {"timeout": "soon"},
        {"timeout": -1},
        {"send_batch_max_size": -1},
        {"max_size": 10},
    ],
)
def test_invalid_config(config: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        BatchProcessorConfig.model_validate(config)
