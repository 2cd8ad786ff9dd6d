"""Third-party components, packaged apart from otel-receiver: a processor that sets one
attribute on every span, and an exporter that appends span names to a text file.

They exist to prove that a package installed next to the receiver adds components
through the ``otel_receiver.processors`` and ``otel_receiver.exporters`` entry points
without touching the receiver.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pydantic import Field

from otel_receiver.attributes import set_str
from otel_receiver.component import (
    Batch,
    ComponentConfig,
    ComponentSettings,
    Exporter,
    ExporterConfig,
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


class NameListConfig(ExporterConfig):
    path: str = Field(min_length=1, description="text file that receives one span name per line")


class NameListExporter(Exporter):
    signals = frozenset({Signal.TRACES})

    def __init__(self, config: NameListConfig, settings: ComponentSettings) -> None:
        super().__init__(config, settings)
        self.path = Path(config.path)

    async def export(self, batch: Batch, context: RequestContext) -> None:
        assert isinstance(batch, ExportTraceServiceRequest)
        names = [s.name for rs in batch.resource_spans for ss in rs.scope_spans for s in ss.spans]
        await asyncio.to_thread(self._append, names)

    def _append(self, names: list[str]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.writelines(f"{name}\n" for name in names)

    def describe(self) -> str:
        return f"{self.settings.component_id}: span names to {self.path}"


exporter_factory: Factory[NameListConfig, NameListExporter] = Factory(
    type_name="name_list",
    config_model=NameListConfig,
    create=NameListExporter,
    signals=frozenset({Signal.TRACES}),
    description="appends the name of every span to a text file (test plugin)",
)
