"""Audit tagging: who sent each span and log record, from the authenticated request."""

from otel_receiver.component import ComponentSettings, Factory, Processor, Signal
from processors.audit.config import AuditConfig
from processors.audit.processor import AuditProcessor


def _create(config: AuditConfig, settings: ComponentSettings) -> Processor:
    return AuditProcessor(config, settings)


factory: Factory[AuditConfig, Processor] = Factory(
    type_name="audit",
    config_model=AuditConfig,
    create=_create,
    signals=frozenset(Signal),
    description="Write audit.tenant.id and audit.actor.id from the authenticated request",
)

__all__ = ["AuditConfig", "AuditProcessor", "factory"]
