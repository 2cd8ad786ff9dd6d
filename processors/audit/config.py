"""Configuration of the ``audit`` processor."""

from __future__ import annotations

from pydantic import Field

from otel_receiver.component import ComponentConfig


class AuditConfig(ComponentConfig):
    tenant: bool = Field(default=True, description="write audit.tenant.id from the authenticated tenant")
    actor: bool = Field(default=True, description="write audit.actor.id from the authenticated actor")
