"""The ``pii_redaction`` processor: walks spans, log records and metric points in place.

Clean path: serialize the request once (upb, C speed), scan it once for every anchor. No hit
means nothing to do. Hits are mapped back to the ``resource`` / ``scope`` / span, record or
metric they fall in by reading the protobuf framing (tags and lengths) of the serialized
bytes, so only those items are walked attribute by attribute.

Failure is closed: a value that cannot be processed is replaced by a mask, never passed on;
log lines name keys and exception types, never values.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from prometheus_client import CollectorRegistry, Counter

from otel_receiver import attributes as attrs
from otel_receiver.component import Batch, ComponentSettings, Processor, RequestContext, Signal
from otel_receiver.encoded_attributes import int_array_attribute, int_attribute, string_array_attribute
from otel_receiver.spanscan import Edit, NotCanonical, locate_fields
from otel_receiver.telemetry import PerRegistry
from processors.pii_redaction.config import PiiRedactionConfig, resolve_validator
from processors.pii_redaction.detectors import BLOCKED_KEY
from processors.pii_redaction.engine import (
    DROP,
    PLAIN_KEY,
    PrefilteredScanner,
    Redactor,
    ScanFound,
    Tally,
    build_detectors,
    request_scanner,
)
from semconv import attributes as sc

log = logging.getLogger(__name__)

ERROR_TYPE = "ERROR"
# The prefix of the pii.redacted.* keys: where these bytes do not occur in an item's
# serialization, it holds none of those attributes.
_ANNOTATION_MARK = b"pii.redacted."

_COUNTERS: PerRegistry[Counter] = PerRegistry()

# Requests from this size on are scanned on the prefilter's worker thread (prescan). The
# hand-off costs the event loop's thread ~6-20 us (8.2 us for a 0.9 kB request scanned in
# 2.1 in line), the scan ~2.3 us per kB: measured, they break even between 6 and 12 kB.
BACKGROUND_SCAN_MIN_BYTES = 16 * 1024


def _new_redactions_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        "otel_receiver_pii_redactions",
        "Values redacted by the pii_redaction processor, by type",
        ["type"],
        registry=registry,
    )


def redactions_counter(registry: CollectorRegistry) -> Counter:
    """``otel_receiver_pii_redactions_total{type}``, shared by every instance on a registry.

    Not ``pii_redactions_total``: the prometheus exporter derives that DESIGN.md series
    from ``pii.redacted.*`` on the spans and log records it exports."""
    return _COUNTERS.get(registry, _new_redactions_counter)


# Synthetic values of every built-in type, in prose and in JSON, for ``warm_up``.
_WARM_UP_TEXTS = (
    "Hi, I am Jane (jane.doe@mailbox.org, +1 (415) 555-0132, 020 7946 0321). Card 4111 1111 1111 1111, "
    "IBAN DE89 3704 0044 0532 0130 00 / GB82WEST12345698765432, SSN 219-45-6789, from 81.2.69.160 and "
    "2a00:1450:4007:80e::200e at 2024-01-15 10:30:00, order ORD-2024-000123, v1.2.3, $1,299.99. "
    "OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z AKIAIOSFODNN7EXAMPL3 password=Hunter2Pass "
    "Authorization: Bearer abcDEF0123456789ghiJKL postgres://app:S3cret@db:5432/x?token=abc123XYZ789",
    '[{"role": "user", "parts": [{"type": "text", "content": "mail jane.doe@mailbox.org or call 4155550132; '
    'uuid 123e4567-e89b-12d3-a456-426614174000, trace 4bf92f3577b34da6a3ce929d0e0e4736"}]}]',
)

# Paths produced by ``locate``: (resource index, -1, -1) for resource attributes,
# (resource, scope, -1) for scope attributes, (resource, scope, item) for a span/record/metric.
Path = tuple[int, int, int]

# Fields of one located message that hold a hit: the occurrence indexes of each field
# number, highest first (deletions keep lower ones valid), or None for "look at everything"
# (no prefilter).
Fields = dict[int, list[int]] | None

# Field numbers in the OTLP protos (opentelemetry-proto v1).
_RESOURCE_ATTRIBUTES = 1
_SCOPE_ATTRIBUTES = 3
_SPAN_NAME, _SPAN_ATTRIBUTES, _SPAN_EVENTS, _SPAN_LINKS, _SPAN_STATUS = 5, 9, 11, 13, 15
_LOG_BODY, _LOG_ATTRIBUTES = 5, 6


_NOTHING: tuple[int, ...] = ()


def _indexes(fields: Fields, fno: int) -> Sequence[int] | None:
    """Occurrence indexes of ``fno`` to visit, highest first; None: every one."""
    return None if fields is None else fields.get(fno, _NOTHING)


def _wants(fields: Fields, fno: int) -> bool:
    return fields is None or fno in fields


class PiiRedactionProcessor(Processor):
    signals = frozenset({Signal.TRACES, Signal.METRICS, Signal.LOGS})
    keeps_wire = True

    def __init__(self, config: PiiRedactionConfig, settings: ComponentSettings) -> None:
        super().__init__(config, settings)
        self.cfg = config
        self.log = settings.logger if settings.logger is not None else log
        detectors = build_detectors(
            phone_regions=config.phone_regions,
            enabled=config.detectors,
            disabled=config.disabled_detectors,
            custom=config.custom_detectors,
            resolve_validator=resolve_validator,
            include_private_ips=config.redact_private_ips,
            include_documentation=config.redact_documentation_examples,
        )
        ner = None
        if config.ner.enabled:
            from processors.pii_redaction.ner import make_ner

            ner = make_ner(config.ner.entities, config.ner.language, config.ner.score_threshold)
        key_rules = [(p, "mask") for p in config.blocked_key_patterns]
        key_rules += [(r.pattern, r.action) for r in config.key_rules]
        self.redactor = Redactor(
            detectors,
            default_action=config.default_action,
            actions=dict(config.actions),
            allowed_keys=config.allowed_keys,
            allowed_key_patterns=config.allowed_key_patterns,
            key_rules=key_rules,
            hash_key=config.hash_key.get_secret_value().encode() if config.hash_key else None,
            parse_json=config.parse_json,
            max_depth=config.max_depth,
            ner=ner,
        )
        # Without NER every detector has an anchor, so one scan can prove a request clean.
        self.scanner = None if ner is not None else request_scanner(self.redactor)
        scanner = self.scanner
        self._background = scanner.in_background() if isinstance(scanner, PrefilteredScanner) else None
        self.counter = redactions_counter(settings.telemetry.registry)
        # The counter's child per type: labels() costs ~1.8 us more than the increment,
        # paid for each type in each request with a redaction.
        self._counted: dict[str, Counter] = {}
        # (attributes field, sorted (type, count) pairs) -> the encoded pii.redacted.* attributes
        self._annotations: dict[tuple[int, tuple[tuple[str, int], ...]], bytes] = {}

    async def start(self) -> None:
        self.warm_up()

    async def shutdown(self) -> None:
        if self._background is not None:
            self._background.close()

    def prescan(self, signal: Signal, wire: bytes) -> Awaitable[ScanFound | None] | None:
        """The request scan on the prefilter's worker thread, for a request large enough to
        repay the hand-off (a pipe write, a wake-up of the loop and of the request's task)."""
        if self._background is None or len(wire) < BACKGROUND_SCAN_MIN_BYTES:
            return None
        try:
            return self._background.start(wire)
        except NotImplementedError:  # an event loop that cannot watch a pipe
            self._background = None
            return None

    def warm_up(self) -> None:
        """Runs a synthetic request through, uncounted: RE2 builds its DFA states lazily and
        python-stdnum and libphonenumber load their tables on first use, which otherwise
        doubles the cost of the first requests (measured 3.3 vs 1.4 ms per 100 spans)."""
        req = ExportTraceServiceRequest()
        span = req.resource_spans.add().scope_spans.add().spans.add()
        for i, text in enumerate(_WARM_UP_TEXTS):
            kv = span.attributes.add()
            kv.key = f"warm_up.{i}"
            kv.value.string_value = text
        saved = self.counter, self._counted
        self.counter, self._counted = Counter("warm_up", "unregistered", ["type"], registry=None), {}
        try:
            self.process_traces(req, RequestContext())
        finally:
            self.counter, self._counted = saved

    # --- per-request entry points ---

    def process_traces(self, batch: ExportTraceServiceRequest, context: RequestContext) -> Batch | None:
        spans = batch.resource_spans
        return self._redact(batch, context, spans, "scope_spans", "spans", self._span, _SPAN_ATTRIBUTES)

    def process_logs(self, batch: ExportLogsServiceRequest, context: RequestContext) -> Batch | None:
        logs, redact = batch.resource_logs, self._log_record
        return self._redact(batch, context, logs, "scope_logs", "log_records", redact, _LOG_ATTRIBUTES)

    def process_metrics(self, batch: ExportMetricsServiceRequest, context: RequestContext) -> Batch | None:
        # Data points are not annotated: an extra attribute would split their series.
        metrics = batch.resource_metrics
        return self._redact(batch, context, metrics, "scope_metrics", "metrics", self._metric, None)

    def _redact(
        self,
        batch: Batch,
        context: RequestContext,
        resources: Any,
        scopes_field: str,
        items_field: str,
        redact_item: Callable[[Any, Fields], Tally],
        item_attributes: int | None,
    ) -> Batch:
        """The three signals share one layout: resources holding scopes holding items.
        ``item_attributes``: the field number of the items' attributes, where the
        ``pii.redacted.*`` annotations go (None: items are not annotated)."""
        totals: dict[str, int] = {}
        edits: list[Edit] = []
        annotate = self.cfg.annotate
        # Targets come in request order: consecutive items mostly share their scope, whose
        # container upb would otherwise wrap anew for each (~1 us).
        items_of: tuple[int, int] | None = None
        items: Any = None
        for (ri, si, k), fields in self._targets(batch, context):
            annotated: int | None = None
            if si < 0:
                message = resources[ri].resource
                tally = self._attributes_of(message.attributes, fields, _RESOURCE_ATTRIBUTES)
                annotated = _RESOURCE_ATTRIBUTES
            elif k < 0:
                message = getattr(resources[ri], scopes_field)[si].scope
                tally = self._attributes_of(message.attributes, fields, _SCOPE_ATTRIBUTES)
            else:
                if items_of != (ri, si):
                    items = getattr(getattr(resources[ri], scopes_field)[si], items_field)
                    items_of = (ri, si)
                message = items[k]
                tally = redact_item(message, fields)
                annotated = item_attributes
            if not tally:
                continue
            self._merge(tally, totals)
            # Its new bytes, so that the request's serialization is patched; targets
            # come in request order, which is the order splice wants.
            payload = message.SerializeToString()
            if annotate and annotated is not None:
                payload = self._annotate(message, payload, annotated, tally)
            edits.append((ri, si, k, payload, False))
        # Every change this processor makes is a tallied redaction of an edited message.
        if totals:
            if edits:
                context.splice_wire(batch, edits)
            else:
                context.drop_wire()
        counted = self._counted
        for type_name, n in totals.items():
            child = counted.get(type_name)
            if child is None:
                child = counted[type_name] = self.counter.labels(type=type_name)
            child.inc(n)
        return batch

    def _targets(self, batch: Any, context: RequestContext) -> list[tuple[Path, Fields]]:
        if self.scanner is not None:
            # Every string of the objects is a contiguous run of the bytes they were parsed
            # from, so the received bytes serve the prefilter as well as a serialization.
            # Protobuf's own bytes are canonical; only a client's may need a second pass.
            received = context.wire_for(batch)
            found = cast("ScanFound | None", context.prescanned(self, received))
            for buf in (received, None) if received else (None,):
                buf = buf or batch.SerializeToString()
                context.keep_wire(batch, buf)  # until a redaction changes the batch
                if found is not None:  # buf is the received bytes it was found in
                    assert isinstance(self.scanner, PrefilteredScanner)
                    matches, found = self.scanner.matches(buf, found), None
                else:
                    matches = self.scanner.matches(buf)
                if not matches:
                    return []
                try:
                    return cast("list[tuple[Path, Fields]]", locate_fields(buf, matches))
                except NotCanonical:
                    continue
                except (IndexError, ValueError):
                    break
            self.log.warning("pii_redaction: could not map prefilter hits; scanning the whole request")
        return [(path, None) for path in _every_path(batch)]

    # --- items ---

    def _attributes_of(self, attributes: Any, fields: Fields, field: int) -> Tally:
        """A resource's or a scope's attributes (field number ``field``)."""
        tally = Tally()
        self._attributes(attributes, tally, 0, _indexes(fields, field))
        return tally

    def _span(self, span: Any, fields: Fields) -> Tally:
        # Fields are checked before they are read: each read of a upb field builds an object.
        tally = Tally()
        attributes = _indexes(fields, _SPAN_ATTRIBUTES)
        if attributes is None or attributes:
            self._attributes(span.attributes, tally, 0, attributes)
        if _wants(fields, _SPAN_NAME) and span.name:
            span.name = self._plain_text(span.name, tally)
        if _wants(fields, _SPAN_STATUS) and span.status.message:
            span.status.message = self._plain_text(span.status.message, tally)
        events = _indexes(fields, _SPAN_EVENTS)
        for j in range(len(span.events)) if events is None else events:
            event = span.events[j]
            if event.name:
                event.name = self._plain_text(event.name, tally)
            self._attributes(event.attributes, tally, 0)
        links = _indexes(fields, _SPAN_LINKS)
        for j in range(len(span.links)) if links is None else links:
            self._attributes(span.links[j].attributes, tally, 0)
        return tally

    def _log_record(self, record: Any, fields: Fields) -> Tally:
        tally = Tally()
        if _wants(fields, _LOG_BODY) and record.HasField("body"):
            try:
                if self._any_value(record.body, tally, 0) is DROP:
                    record.ClearField("body")
            except Exception as e:
                self._fail_closed(record.body, tally, "body", e)
        attributes = _indexes(fields, _LOG_ATTRIBUTES)
        if attributes is None or attributes:
            self._attributes(record.attributes, tally, 0, attributes)
        return tally

    def _metric(self, metric: Any, fields: Fields) -> Tally:
        tally = Tally()
        kind = metric.WhichOneof("data")
        if kind is not None:
            for dp in getattr(metric, kind).data_points:
                self._attributes(dp.attributes, tally, 0)
                for ex in getattr(dp, "exemplars", ()):
                    self._attributes(ex.filtered_attributes, tally, 0)
        if metric.description:
            metric.description = self._plain_text(metric.description, tally)
        return tally

    def _annotate(self, message: Any, serialized: bytes, field: int, tally: Tally) -> bytes:
        """Records ``tally`` as ``pii.redacted.*`` on ``message`` (its attributes are
        field ``field``), whose serialization is ``serialized``; returns the new one."""
        if serialized.find(_ANNOTATION_MARK) < 0:  # not `in`: see Redactor._inside_json_strings
            # Without the mark in its bytes the item holds none of the annotations: their
            # encoding is appended to the bytes and merged into the object, one C call
            # instead of a wrapper per attribute and value (~7 us per annotated item).
            counts = tuple(sorted(tally.by_type.items()))
            extra = self._annotations.get((field, counts))
            if extra is None:
                types = [t for t, _ in counts]
                extra = (
                    int_attribute(sc.PII_REDACTED_COUNT, tally.total, field)
                    + string_array_attribute(sc.PII_REDACTED_TYPES, types, field)
                    + int_array_attribute(sc.PII_REDACTED_COUNTS, [n for _, n in counts], field)
                )
                # Few tallies recur (one e-mail, two phones, ...): encoding them in Python
                # cost ~13 us per annotated item (0.4 us from here), ~8% of the processor at 10% PII.
                if len(self._annotations) >= 4096:
                    self._annotations.clear()
                self._annotations[(field, counts)] = extra
            message.MergeFromString(extra)
            return serialized + extra
        self._merge_annotations(message.attributes, tally)
        serialized_again: bytes = message.SerializeToString()
        return serialized_again

    @staticmethod
    def _merge_annotations(attributes: Any, tally: Tally) -> None:
        """Add ``tally`` to annotations an earlier pass (or tier) left on the item."""
        previous = attrs.get(attributes, sc.PII_REDACTED_COUNT)
        prev_count = previous.int_value if previous is not None and previous.HasField("int_value") else 0
        by_type = dict(tally.by_type)
        prev_types = attrs.get(attributes, sc.PII_REDACTED_TYPES)
        prev_counts = attrs.get(attributes, sc.PII_REDACTED_COUNTS)
        if prev_types is not None and prev_types.HasField("array_value"):
            names = [v.string_value for v in prev_types.array_value.values]
            counts = (
                [v.int_value for v in prev_counts.array_value.values]
                if prev_counts is not None and prev_counts.HasField("array_value")
                else []
            )
            if len(counts) != len(names):  # annotated without counts: only the types are known
                counts = [0] * len(names)
            for name, n in zip(names, counts, strict=True):
                by_type[name] = by_type.get(name, 0) + n
        types = sorted(by_type)
        attrs.set_int(attributes, sc.PII_REDACTED_COUNT, prev_count + tally.total)
        attrs.set_str_array(attributes, sc.PII_REDACTED_TYPES, types)
        attrs.set_int_array(attributes, sc.PII_REDACTED_COUNTS, (by_type[t] for t in types))

    @staticmethod
    def _merge(tally: Tally, totals: dict[str, int]) -> None:
        for t, n in tally.by_type.items():
            totals[t] = totals.get(t, 0) + n

    # --- values ---

    def _plain_text(self, text: str, tally: Tally) -> str:
        try:
            r = self.redactor.redact_text(text, tally, self.cfg.max_depth)
        except Exception as e:
            self.log.error("pii_redaction: failed on a name/message (%s); masked", type(e).__name__)
            tally.add(ERROR_TYPE)
            return f"[REDACTED:{ERROR_TYPE}]"
        if r is None:
            return text
        if r is DROP:
            return ""
        result: str = r
        return result

    def _attributes(
        self, attributes: Any, tally: Tally, depth: int, only: Sequence[int] | None = None
    ) -> None:
        """Redacts every attribute, or those at the indexes in ``only`` (highest first)."""
        redactor = self.redactor
        order = range(len(attributes) - 1, -1, -1) if only is None else only
        for i in order:
            if i >= len(attributes):
                continue
            kv = attributes[i]
            key = kv.key
            decision = redactor.key_decision(key)
            if decision.allowed:
                continue
            if not decision.plain:
                # Map keys can hold values too (a log body keyed by e-mail address).
                new_key = self._plain_text(key, tally)
                if new_key != key:
                    kv.key = key = new_key
            try:
                if decision.action is not None:
                    tally.add(BLOCKED_KEY)
                    if decision.action == "drop":
                        del attributes[i]
                    else:
                        raw = (
                            kv.value.string_value.encode()
                            if kv.value.HasField("string_value")
                            else kv.value.SerializeToString()
                        )
                        kv.value.Clear()
                        kv.value.string_value = redactor.whole_value_token(decision.action, raw)
                elif self._any_value(kv.value, tally, depth) is DROP:
                    del attributes[i]
            except Exception as e:
                self._fail_closed(kv.value, tally, key, e)

    def _fail_closed(self, value: AnyValue, tally: Tally, where: str, e: Exception) -> None:
        # Only the key is logged, and only when it is a plain name (a key could hold PII too).
        shown = where if PLAIN_KEY(where) else "<key withheld>"
        self.log.error("pii_redaction: failed on %r (%s); value masked", shown, type(e).__name__)
        value.Clear()
        value.string_value = f"[REDACTED:{ERROR_TYPE}]"
        tally.add(ERROR_TYPE)

    def _any_value(self, value: AnyValue, tally: Tally, depth: int) -> Any:
        """Redacts ``value`` in place; returns DROP when the enclosing entry must go."""
        kind = value.WhichOneof("value")
        if kind == "string_value":
            r = self.redactor.redact_text(value.string_value, tally, depth)
            if r is None or r is DROP:
                return r
            value.string_value = r
            return None
        if kind is None or kind in ("bool_value", "double_value", "int_value"):
            return None
        if depth >= self.cfg.max_depth:
            value.Clear()
            value.string_value = f"[REDACTED:{BLOCKED_KEY}]"
            tally.add(BLOCKED_KEY)
            return None
        if kind == "array_value":
            values = value.array_value.values
            i = len(values) - 1
            while i >= 0:
                if self._any_value(values[i], tally, depth + 1) is DROP:
                    del values[i]
                i -= 1
            return None
        if kind == "kvlist_value":
            self._attributes(value.kvlist_value.values, tally, depth + 1)
            return None
        if kind == "bytes_value":
            r = self.redactor.redact_bytes(value.bytes_value, tally)
            if r is None or r is DROP:
                return r
            value.bytes_value = r
            return None
        # int values are not scanned: the request prefilter sees their varint bytes, not
        # digits. Key rules cover numeric attributes that hold identifiers.
        return None


def _every_path(batch: Any) -> list[Path]:
    out: list[Path] = []
    if isinstance(batch, ExportTraceServiceRequest):
        groups = [(rs.scope_spans, "spans") for rs in batch.resource_spans]
    elif isinstance(batch, ExportLogsServiceRequest):
        groups = [(rl.scope_logs, "log_records") for rl in batch.resource_logs]
    else:
        groups = [(rm.scope_metrics, "metrics") for rm in batch.resource_metrics]
    for ri, (scopes, field) in enumerate(groups):
        out.append((ri, -1, -1))
        for si, scope in enumerate(scopes):
            out.append((ri, si, -1))
            out.extend((ri, si, k) for k in range(len(getattr(scope, field))))
    return out
