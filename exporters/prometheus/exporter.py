"""The ``prometheus`` exporter: span-derived GenAI metrics, translated OTLP metrics and the
receiver's self-metrics, served on one /metrics endpoint."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterable, Sequence
from typing import cast

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from exporters.prometheus.config import PrometheusExporterConfig, split_endpoint
from exporters.prometheus.selfmetrics import self_metrics_for
from exporters.prometheus.server import ScrapeServer
from exporters.prometheus.spanmetrics import SPAN_FAMILIES, SpanMetricsState, aggregate_logs
from exporters.prometheus.translate import TranslatedMetrics
from otel_receiver.component import (
    Batch,
    ComponentSettings,
    Exporter,
    ExporterConfig,
    RequestContext,
    Signal,
    merge_parts,
)


class _Snapshot:
    """What prometheus-client's encoders expect: something with ``collect()``."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


class PrometheusExporter(Exporter):
    signals = frozenset({Signal.TRACES, Signal.METRICS, Signal.LOGS})
    uses_wire = True  # the span metrics' scan
    # Spans are read from the wire (the Python fallback parses it rather than read the
    # objects); lagging objects only ever come with traces.
    accepts_lagging_objects = True
    suspends = False  # sums in memory; scrapes read them
    exports_now = True

    def __init__(self, config: ExporterConfig, settings: ComponentSettings) -> None:
        super().__init__(config, settings)
        if not isinstance(config, PrometheusExporterConfig):
            raise TypeError("prometheus exporter needs a PrometheusExporterConfig")
        self.cfg = config
        self._id = settings.component_id
        self._lock = threading.Lock()
        self._self_metrics = self_metrics_for(settings.telemetry.registry)
        self.spans = SpanMetricsState(
            exporter_id=self._id,
            self_metrics=self._self_metrics,
            max_series=config.max_series_per_metric,
            expiration=config.span_metrics_expiration,
            exemplars=config.exemplars,
            const_labels=config.const_labels,
            lock=self._lock,
        )
        self.translated = TranslatedMetrics(
            exporter_id=self._id,
            self_metrics=self._self_metrics,
            max_series=config.max_series_per_metric,
            expiration=config.metric_expiration,
            namespace=config.namespace,
            add_suffixes=config.add_metric_suffixes,
            resource_labels=config.resource_to_telemetry_conversion,
            exemplars=config.exemplars,
            const_labels=config.const_labels,
            max_exp_buckets=config.exponential_histogram_max_buckets,
            lock=self._lock,
        )
        self._self_collectors: list[Collector] = []
        if config.self_metrics:
            process = CollectorRegistry(auto_describe=True)
            ProcessCollector(registry=process)
            PlatformCollector(registry=process)
            GCCollector(registry=process)
            self._self_collectors = [settings.telemetry.registry, process]
        self._warned_clashes: set[str] = set()
        # DESIGN.md gives these names to the span-derived metrics; a self-metric a processor
        # registers under one of them must not take the name over while no span has
        # produced a sample yet.
        self._reserved = frozenset(f.name for f in SPAN_FAMILIES) if config.span_metrics else frozenset()
        host, port = split_endpoint(config.endpoint)
        self.server = ScrapeServer(host, port, self.render, settings.logger)

    @property
    def url(self) -> str:
        """The scrape URL, with the real port once started."""
        return self.server.url

    async def start(self) -> None:
        await self.server.start()

    def describe(self) -> str:
        return f"serving {self.url}"

    async def shutdown(self) -> None:
        await self.server.stop()

    async def export_parts(self, parts: Sequence[Batch], context: RequestContext) -> None:
        self.export_now(parts, context)

    def export_now(self, parts: Sequence[Batch], context: RequestContext) -> None:
        # Span metrics read the coalesced requests' bytes piece by piece: no merge.
        if parts and isinstance(parts[0], ExportTraceServiceRequest):
            self._export_spans(cast("Sequence[ExportTraceServiceRequest]", parts), context)
        else:
            self._export(merge_parts(parts, context), context)

    def _export_spans(
        self, batch: ExportTraceServiceRequest | Sequence[ExportTraceServiceRequest], context: RequestContext
    ) -> None:
        if self.cfg.span_metrics:
            self.spans.add_spans(batch, context, self.cfg.tenant_label, self.cfg.count_internal_agent_usage)

    async def export(self, batch: Batch, context: RequestContext) -> None:
        self._export(batch, context)

    def _export(self, batch: Batch, context: RequestContext) -> None:
        if isinstance(batch, ExportTraceServiceRequest):
            self._export_spans(batch, context)
        elif isinstance(batch, ExportLogsServiceRequest):
            if self.cfg.span_metrics:
                self.spans.merge(aggregate_logs(batch, context, self.cfg.tenant_label))
                self._self_metrics.series.labels(self._id, "spans").set(self.spans.series_count())
        elif isinstance(batch, ExportMetricsServiceRequest):
            self.translated.consume(batch)
            self._self_metrics.series.labels(self._id, "otlp").set(self.translated.series_count())

    # --- scrape ------------------------------------------------------------------------

    def collect(self) -> list[Metric]:
        """Every family to expose, names unique (the exposition formats require it)."""
        with self._lock:
            now = time.monotonic()
            expired = self.spans.expire(now) + self.translated.expire(now)
            ours = [*self.spans.families(), *self.translated.families()]
            span_series, otlp_series = self.spans.series_count(), self.translated.series_count()
        if expired:
            self._self_metrics.expired_series.labels(self._id).inc(expired)
        self._self_metrics.series.labels(self._id, "spans").set(span_series)
        self._self_metrics.series.labels(self._id, "otlp").set(otlp_series)
        by_name: dict[str, Metric] = {}
        for family in ours:
            if not family.samples:
                continue
            seen = by_name.get(family.name)
            if seen is None:
                by_name[family.name] = family
            elif seen.type == family.type:
                # A translated OTLP metric named like a span-derived one (an SDK's own
                # gen_ai.client.token.usage): same family, told apart by job/instance.
                seen.samples.extend(family.samples)
            else:
                self._self_metrics.dropped_points.labels(self._id, "type_conflict").inc(len(family.samples))
        self._add_self_metrics(by_name, self._self_collectors)
        return list(by_name.values())

    def _add_self_metrics(self, by_name: dict[str, Metric], collectors: Iterable[Collector]) -> None:
        for collector in collectors:
            for family in collector.collect():
                if family.name in by_name or family.name in self._reserved:
                    # Never expose two families under one name: sums over the name would
                    # double count. The exported (span-derived or translated) one wins.
                    if family.name not in self._warned_clashes:
                        self._warned_clashes.add(family.name)
                        self.settings.logger.warning(
                            "self-metric %s clashes with an exported metric of that name; not exposed",
                            family.name,
                        )
                    continue
                by_name[family.name] = family

    def render(self, accept: str, want_gzip: bool) -> tuple[bytes, str, bool]:
        encoder, content_type = choose_encoder(accept)
        fmt = "openmetrics" if content_type.startswith("application/openmetrics-text") else "text"
        self._self_metrics.scrapes.labels(self._id, fmt).inc()
        body = encoder(_Snapshot(self.collect()))
        if want_gzip:
            return gzip.compress(body, compresslevel=6), content_type, True
        return body, content_type, False


def create(config: PrometheusExporterConfig, settings: ComponentSettings) -> PrometheusExporter:
    return PrometheusExporter(config, settings)
