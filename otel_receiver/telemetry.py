"""Self-telemetry: every counter and gauge of the runtime and its components, in one registry.

The registry is a ``prometheus_client.CollectorRegistry`` so that the Prometheus
exporter serves it as is (``otel_receiver_*``), and tests read it with
``value(...)``. Components register their own metrics on ``registry`` (for example
``pii_redactions_total``) so that all of it is exposed in one place.

Counters are updated once per request or batch, never per span, so the cost of
prometheus-client's locking stays out of the hot path.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

T = TypeVar("T")


class PerRegistry(Generic[T]):
    """One object per registry, built at first use and then shared: a component's
    metrics are registered once, however many instances of it (``batch/a``,
    ``batch/b``) use the registry; registering a name twice is an error.

    Weak keys: a registry that is gone must not leave its objects to a new registry
    that happens to reuse its id."""

    def __init__(self) -> None:
        self._objects: weakref.WeakKeyDictionary[CollectorRegistry, T] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, registry: CollectorRegistry, build: Callable[[CollectorRegistry], T]) -> T:
        """The object of ``registry``, ``build(registry)`` the first time."""
        with self._lock:
            found = self._objects.get(registry)
            if found is None:
                found = self._objects[registry] = build(registry)
            return found


class SelfTelemetry:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "otel_receiver_requests",
            "OTLP export requests by transport, signal and outcome",
            ["transport", "signal", "outcome"],
            registry=r,
        )
        self.received_items = Counter(
            "otel_receiver_received_items",
            "Spans, metric data points and log records accepted",
            ["transport", "signal"],
            registry=r,
        )
        self.refused_items = Counter(
            "otel_receiver_refused_items",
            "Items refused at the receiver (client told to retry, or rejected as invalid)",
            ["transport", "signal", "reason"],
            registry=r,
        )
        self.removed_reserved_attributes = Counter(
            "otel_receiver_removed_reserved_attributes",
            "Client-sent attributes under a name only the receiver may write (audit.*), removed",
            ["transport", "signal"],
            registry=r,
        )
        self.exported_items = Counter(
            "otel_receiver_exported_items",
            "Items an exporter delivered",
            ["exporter", "signal"],
            registry=r,
        )
        self.dropped_items = Counter(
            "otel_receiver_dropped_items",
            "Accepted items that were not delivered, by reason",
            ["component", "signal", "reason"],
            registry=r,
        )
        self.export_retries = Counter(
            "otel_receiver_export_retries",
            "Export attempts that failed and were retried",
            ["exporter"],
            registry=r,
        )
        self.queue_size = Gauge(
            "otel_receiver_queue_size",
            "Items waiting in an exporter queue",
            ["exporter"],
            registry=r,
        )
        self.queue_capacity = Gauge(
            "otel_receiver_queue_capacity",
            "Capacity of an exporter queue in items",
            ["exporter"],
            registry=r,
        )
        self.batch_latency = Histogram(
            "otel_receiver_batch_latency_seconds",
            "Time to decode and process one request through a pipeline's processors",
            ["signal"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of a sample (0.0 when it was never set); for tests and the CLI."""
        v = self.registry.get_sample_value(name, labels or {})
        return 0.0 if v is None else v

    def total(self, name: str, **match: str) -> float:
        """Sum of every sample of ``name`` whose labels include ``match``."""
        s = 0.0
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in match.items()):
                    s += sample.value
        return s
