"""A third-party processor, packaged apart from otel-receiver: sets one attribute on every span.

It exists to prove that a package installed next to the receiver adds a processor
through the ``otel_receiver.processors`` entry point without touching the receiver.
"""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pydantic import Field

from otel_receiver.attributes import set_str
from otel_receiver.component import (
    Batch,
    ComponentConfig,
    ComponentSettings,
    Factory,
    Processor,
    RequestContext,
    Signal,
)


class TagConfig(ComponentConfig):
    key: str = Field(default="plugin.tagged", min_length=1, description="attribute set on every span")
    value: str = Field(default="yes", description="its string value")


class TagProcessor(Processor):
    signals = frozenset({Signal.TRACES})

    def __init__(self, config: TagConfig, settings: ComponentSettings) -> None:
        super().__init__(config, settings)
        self.key = config.key
        self.value = config.value

    def process_traces(self, batch: ExportTraceServiceRequest, context: RequestContext) -> Batch | None:
        for resource_spans in batch.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    set_str(span.attributes, self.key, self.value)
        return batch


factory: Factory[TagConfig, TagProcessor] = Factory(
    type_name="tag_everything",
    config_model=TagConfig,
    create=TagProcessor,
    signals=frozenset({Signal.TRACES}),
    description="sets one string attribute on every span (test plugin)",
)
