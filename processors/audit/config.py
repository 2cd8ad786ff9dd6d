"""Configuration of the ``audit`` processor."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from otel_receiver.component import ComponentConfig


class TrailConfig(ComponentConfig):
    exporter: str | None = Field(
        default=None,
        description="id of the exporter whose store keeps the audit_log (a clickhouse exporter "
        "used by a pipeline); unset = no audit records",
    )
    flush_interval: float = Field(default=1.0, gt=0, le=60, description="seconds between writes")
    max_pending: int = Field(
        default=100_000,
        ge=10,
        description="records waiting for the store before the receiver answers 'retry later'",
    )
    genai_records: bool = Field(
        default=True,
        description="one record per GenAI span (its action); off = one record per request only",
    )
    anchor_file: str | None = Field(
        default=None,
        description="file the head of the chain (Seq, RecordHash) is appended to, for audit-verify to "
        "detect records removed from the end or rewritten; keep it out of reach of whoever can change "
        "the store (relative paths: to the config file)",
    )
    anchor_interval: float = Field(
        default=60.0,
        ge=1,
        le=86_400,
        description="seconds between anchors (also at the first write and at shutdown)",
    )
    chain_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="id of this process's chain; default host:pid:start-ms (unique per start)",
    )


    def anchor_path(self, config_dir: str) -> Path | None:
        if self.anchor_file is None:
            return None
        path = Path(self.anchor_file)
        return path if path.is_absolute() else Path(config_dir) / path


class AuditConfig(ComponentConfig):
    tenant: bool = Field(default=True, description="write audit.tenant.id from the authenticated tenant")
    actor: bool = Field(default=True, description="write audit.actor.id from the authenticated actor")
    genai_actions: bool = Field(
        default=True,
        description="write audit.action / audit.resource.type on GenAI spans (what the principal did)",
    )
    trail: TrailConfig = TrailConfig()

    def exporter_references(self) -> list[tuple[str, str]]:
        return [("trail.exporter", self.trail.exporter)] if self.trail.exporter else []
