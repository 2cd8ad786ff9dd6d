"""Component registry: built-in factories by module path, third-party ones by entry point.

Built-ins are listed by module path and imported only when a config uses them, so a
receiver that never exports to ClickHouse never imports chDB. Third-party packages
declare ``[project.entry-points."otel_receiver.processors"]`` (or ``.exporters``)
pointing at a ``Factory`` object; they are configured exactly like the built-ins.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from otel_receiver.component import Factory

PROCESSOR_GROUP = "otel_receiver.processors"
EXPORTER_GROUP = "otel_receiver.exporters"

# type name -> "module:attribute" of its Factory
BUILTIN_PROCESSORS: dict[str, str] = {
    "batch": "processors.batch:factory",
    "genai_normalize": "processors.genai_normalize:factory",
    "genai_cost": "processors.genai_cost:factory",
    "pii_redaction": "processors.pii_redaction:factory",
    "anomaly": "processors.anomaly:factory",
    "audit": "processors.audit:factory",
}
BUILTIN_EXPORTERS: dict[str, str] = {
    "debug": "exporters.debug:factory",
    "file": "exporters.file:factory",
    "clickhouse": "exporters.clickhouse:factory",
    "prometheus": "exporters.prometheus:factory",
    "otlp": "exporters.otlp:factory",
}


class UnknownComponentError(LookupError):
    pass


class ComponentLoadError(LookupError):
    pass


def _load(ref: str) -> Factory[Any, Any]:
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, attr)
    except (ImportError, AttributeError) as e:
        raise ComponentLoadError(f"cannot load {ref}: {type(e).__name__}: {e}") from e
    if not isinstance(factory, Factory):
        raise TypeError(f"{ref} is not an otel_receiver.component.Factory")
    return factory


class Registry:
    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], Factory[Any, Any]] = {}

    def _plugins(self, group: str) -> dict[str, str]:
        return {ep.name: ep.value for ep in entry_points(group=group)}

    def available(self, kind: str) -> list[str]:
        builtin, group = self._tables(kind)
        names = set(builtin)
        names.update(self._plugins(group))
        return sorted(names)

    def _tables(self, kind: str) -> tuple[dict[str, str], str]:
        if kind == "processors":
            return BUILTIN_PROCESSORS, PROCESSOR_GROUP
        if kind == "exporters":
            return BUILTIN_EXPORTERS, EXPORTER_GROUP
        raise ValueError(kind)

    def register(self, kind: str, factory: Factory[Any, Any]) -> None:
        """Add a component programmatically (embedding, tests); wins over entry points."""
        self._tables(kind)
        self._cache[(kind, factory.type_name)] = factory

    def factory(self, kind: str, type_name: str) -> Factory[Any, Any]:
        key = (kind, type_name)
        if key in self._cache:
            return self._cache[key]
        builtin, group = self._tables(kind)
        ref = builtin.get(type_name) or self._plugins(group).get(type_name)
        if ref is None:
            raise UnknownComponentError(
                f"unknown {kind[:-1]} type {type_name!r}; known: {', '.join(self.available(kind))}"
            )
        factory = _load(ref)
        if factory.type_name != type_name:
            raise TypeError(f"{ref} declares type {factory.type_name!r}, registered as {type_name!r}")
        self._cache[key] = factory
        return factory


REGISTRY = Registry()
