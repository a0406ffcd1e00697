"""The audit trail: one FHIR R4 AuditEvent per access (IHE BALP shapes, :mod:`.events`), written by :mod:`.sinks`."""

from .events import MAJOR_FAILURE, MINOR_FAILURE, SERIOUS_FAILURE, SUCCESS, Actor, AuditEventBuilder
from .sinks import AUDIT_LIMITS, AuditTrail, FhirAuditSink, JsonLinesSink

__all__ = ["Actor", "AuditEventBuilder", "AuditTrail", "FhirAuditSink", "JsonLinesSink", "AUDIT_LIMITS",
           "SUCCESS", "MINOR_FAILURE", "SERIOUS_FAILURE", "MAJOR_FAILURE"]
