"""A pipeline: processors in order over a request, then fan-out to its exporters' queues."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace

from otel_receiver.component import Batch, Processor, RequestContext, Signal, count_items
from otel_receiver.queue import ExporterQueue
from otel_receiver.telemetry import SelfTelemetry

log = logging.getLogger("otel_receiver.pipeline")


class ProcessorError(Exception):
    """A processor raised on a request; the request is refused, the receiver keeps serving."""

    def __init__(self, processor_id: str, cause: BaseException) -> None:
        super().__init__(f"processor {processor_id} failed: {type(cause).__name__}")
        self.processor_id = processor_id


class Pipeline:
    def __init__(
        self,
        pipeline_id: str,
        signal: Signal,
        processors: Sequence[tuple[str, Processor]],
        queues: Sequence[ExporterQueue],
        telemetry: SelfTelemetry,
    ) -> None:
        self.pipeline_id = pipeline_id
        self.signal = signal
        self.processors = list(processors)
        self.queues = list(queues)
        self.telemetry = telemetry
        self._wire_wanted = any(q.exporter.uses_wire for q in self.queues)
        self._lag_accepted = all(q.accepts_lagging_objects for q in self.queues)
        for index, (_, proc) in enumerate(self.processors):
            proc.forward = self._forwarder(index + 1)

    def _forwarder(self, start: int) -> Callable[[Batch, RequestContext], None]:
        def forward(batch: Batch, context: RequestContext) -> None:
            # Called later by buffering processors (batch): the request was already
            # acknowledged, so a failure here can only be counted, not returned.
            try:
                self.run_from(start, batch, context)
            except ProcessorError as e:
                n = count_items(batch)
                log.error("%s: %s; %d items dropped", self.pipeline_id, e, n)
                self.telemetry.dropped_items.labels(e.processor_id, self.signal.value, "processor_error").inc(
                    n
                )

        return forward

    def has_room(self) -> bool:
        return all(q.has_room() for q in self.queues) and all(p.has_room() for _, p in self.processors)

    def consume(self, batch: Batch, context: RequestContext) -> None:
        """Run every processor, then enqueue for every exporter. Raises ProcessorError."""
        self.run_from(0, batch, context)

    def run_from(self, start: int, batch: Batch | None, context: RequestContext) -> None:
        for pid, proc in self.processors[start:]:
            if not proc.keeps_wire:
                context.drop_wire()  # syncs lagging objects first
            elif context.objects_lag and not proc.accepts_lagging_objects:
                context.sync_objects()
            try:
                batch = proc.process(batch, context)  # type: ignore[arg-type]
            except Exception as e:
                # The exception text may quote attribute values (PII): log its type and
                # where it happened, never its message.
                where = "".join(traceback.format_tb(e.__traceback__)[-3:])
                log.error("%s: processor %s raised %s\n%s", self.pipeline_id, pid, type(e).__name__, where)
                raise ProcessorError(pid, e) from e
            if batch is None:
                return
        if batch is None:
            return
        if context.objects_lag and not self._lag_accepted:
            context.sync_objects()
        if not self._wire_wanted:
            if self._lag_accepted:
                context.discard_wire()  # every exporter only counts the items
            else:
                context.drop_wire()
        n = count_items(batch)
        for q in self.queues:
            q.put(batch, context, n)


def fan_out(pipelines: Sequence[Pipeline], batch: Batch, context: RequestContext) -> None:
    """Feed ``batch`` to every pipeline. Processors mutate in place, so every pipeline but
    the last gets its own copy. Raises ProcessorError from the first failing pipeline."""
    last = len(pipelines) - 1
    for i, p in enumerate(pipelines):
        if i == last:
            p.consume(batch, context)
        else:
            dup = type(batch)()
            dup.CopyFrom(batch)
            # Its own context too: the wire is bound to one batch object and dropped or
            # replaced by the processors of one pipeline only.
            own = replace(context)
            own.set_wire(dup, context.wire_for(batch), context.wire_from_client)
            p.consume(dup, own)
