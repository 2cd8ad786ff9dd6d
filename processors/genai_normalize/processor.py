"""The ``genai_normalize`` processor: the normalisation table of ``semconv.normalize``
applied to every span, so that later processors (pii_redaction, genai_cost, anomaly) and
exporters read only the current OTel GenAI names."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_receiver.component import Batch, ComponentSettings, Processor, RequestContext, Signal
from processors.genai_normalize.config import GenAINormalizeConfig
from semconv.normalize import ExclusiveSources, current_provider, normalize_attributes


class GenAINormalizeProcessor(Processor):
    signals = frozenset({Signal.TRACES})

    def __init__(self, config: GenAINormalizeConfig, settings: ComponentSettings) -> None:
        super().__init__(config, settings)
        self.keep_original = config.mode == "keep_original"
        self.exclusive: ExclusiveSources = frozenset(
            (e.source, current_provider(e.provider)) for e in config.exclusive_sources
        )

    def process_traces(self, batch: ExportTraceServiceRequest, context: RequestContext) -> Batch | None:
        keep = self.keep_original
        exclusive = self.exclusive
        for rs in batch.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    normalize_attributes(span.attributes, keep_original=keep, exclusive=exclusive)
        return batch
