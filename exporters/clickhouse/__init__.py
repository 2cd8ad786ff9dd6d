"""ClickHouse exporter: embedded chDB by default, clickhouse-connect for servers and clusters."""

from __future__ import annotations

from otel_receiver.component import ComponentSettings, Exporter, Factory, Signal

from .config import ClickHouseConfig


def _create(config: ClickHouseConfig, settings: ComponentSettings) -> Exporter:
    # Imported here so that validating a config never loads chDB.
    from .exporter import ClickHouseExporter

    return ClickHouseExporter(config, settings)


factory: Factory[ClickHouseConfig, Exporter] = Factory(
    type_name="clickhouse",
    config_model=ClickHouseConfig,
    create=_create,
    signals=frozenset(Signal),
    description="Stores traces, metrics and logs in ClickHouse (embedded chDB or a server/cluster)",
)

__all__ = ["ClickHouseConfig", "factory"]
