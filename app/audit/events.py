"""FHIR R4 ``AuditEvent`` resources (as JSON dicts) for each access, shaped after IHE BALP.

IHE ITI Basic Audit Log Patterns (BALP) 1.1: *Login* (§3.5.1.1), *PatientRead*
(RESTful read with a patient, §3.5.2.2), *PatientQuery* (RESTful search with a
patient, §3.5.2.4). Codes as BALP uses them:

=================  ======================================================  ==========================
event              ``type`` / ``subtype``                                  ``action``
=================  ======================================================  ==========================
launch (sign-in)   DCM 110114 User Authentication / DCM 110122 Login       E
study list         audit-event-type rest / restful-interaction search-type E (query, BALP PatientQuery)
viewer invocation  DCM 110103 DICOM Instances Accessed / restful read     R (one entity per Study UID)
report read        audit-event-type rest / restful-interaction read       R (hook; BALP PatientRead)
thumbnail read     DCM 110103 DICOM Instances Accessed / restful read     R (hook)
=================  ======================================================  ==========================

``outcome``: ``0`` success, ``4`` minor failure, ``8`` serious failure, ``12``
major failure (FHIR R4 audit-event-outcome). ``agent``: the user (``fhirUser``
reference, requestor, v3-ParticipationType IRCP) when known, else the client
(``client_id``, requestor, DCM 110153 Source Role ID); always this app as the
client network node. ``entity``: the patient (audit-entity-type 1, object-role 1),
the query (type 2, role 24, ``query`` base64 of the search parameters), the
studies (type 2, role 3 Report, identifier ``urn:dicom:uid``). Never a token,
code, nonce or secret: only references, UIDs and search parameters.
"""

from __future__ import annotations

import base64
import datetime as _dt
import uuid
from dataclasses import dataclass
from typing import Any, Iterable

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
BALP = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/"

SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE, MAJOR_FAILURE = "0", "4", "8", "12"


def _coding(system: str, code: str, display: str) -> dict:
    return {"system": system, "code": code, "display": display}


LOGIN = (_coding(DCM, "110114", "User Authentication"), _coding(DCM, "110122", "Login"))
QUERY = (_coding(EVENT_TYPE, "rest", "Restful Operation"), _coding(RESTFUL, "search-type", "search-type"))
READ = (_coding(EVENT_TYPE, "rest", "Restful Operation"), _coding(RESTFUL, "read", "read"))
INSTANCES = (_coding(DCM, "110103", "DICOM Instances Accessed"), _coding(RESTFUL, "read", "read"))


@dataclass(frozen=True)
class Actor:
    """Who did it: ``fhir_user`` (a ``Type/id`` reference or absolute URL, ``None`` when unknown), ``client_id``,
    ``iss`` (the FHIR base, names the ``client_id``'s system), ``user_name`` (display, when read)."""

    client_id: str
    iss: str
    fhir_user: str | None = None
    user_name: str | None = None


class AuditEventBuilder:
    """Builds AuditEvent dicts; ``source`` names this app (``AuditEvent.source.observer.display``)."""

    def __init__(self, source: str = "imaging-smart-app", clock=None):
        self.source = source
        self._clock = clock or (lambda: _dt.datetime.now(_dt.timezone.utc))

    def _base(self, kind: tuple[dict, dict], action: str, outcome: str, actor: Actor, profile: str,
              description: str | None = None) -> dict[str, Any]:
        event: dict[str, Any] = {
            "resourceType": "AuditEvent", "id": str(uuid.uuid4()),
            "meta": {"profile": [BALP + profile]},
            "type": kind[0], "subtype": [kind[1]], "action": action,
            "recorded": self._clock().isoformat(timespec="milliseconds"),
            "outcome": outcome,
            "agent": self._agents(actor),
            "source": {"observer": {"display": self.source},
                       "type": [_coding(SOURCE_TYPE, "4", "Application Server")]},
            "entity": [],
        }
        if description:
            event["outcomeDesc"] = description[:200]
        return event

    @staticmethod
    def _agents(actor: Actor) -> list[dict]:
        client = {"type": {"coding": [_coding(DCM, "110153", "Source Role ID")]},
                  "who": {"identifier": {"system": actor.iss, "value": actor.client_id}},
                  "requestor": actor.fhir_user is None}
        if actor.fhir_user is None:
            return [client]
        user = {"type": {"coding": [_coding(PARTICIPATION, "IRCP", "information recipient")]},
                "who": {"reference": actor.fhir_user, **({"display": actor.user_name} if actor.user_name else {})},
                "requestor": True}
        return [user, client]

    @staticmethod
    def _patient(patient_id: str | None) -> list[dict]:
        if not patient_id:
            return []
        return [{"what": {"reference": f"Patient/{patient_id}"}, "type": _coding(ENTITY_TYPE, "1", "Person"),
                 "role": _coding(OBJECT_ROLE, "1", "Patient")}]

    def launch(self, actor: Actor, patient_id: str | None, outcome: str = SUCCESS,
               problem: str | None = None) -> dict:
        """The launch's outcome (BALP Login): ``problem`` is the fact's class name on failure (no upstream text)."""
        event = self._base(LOGIN, "E", outcome, actor, "IHE.BasicAudit.Login", problem)
        event["entity"] = self._patient(patient_id)
        return event

    def study_list(self, actor: Actor, patient_id: str, query: str, count: int | None,
                   outcome: str = SUCCESS) -> dict:
        """A study-list view (BALP PatientQuery): ``query`` the search parameters, ``count`` studies listed."""
        event = self._base(QUERY, "E", outcome, actor, "IHE.BasicAudit.PatientQuery")
        query_entity = {"type": _coding(ENTITY_TYPE, "2", "System Object"),
                        "role": _coding(OBJECT_ROLE, "24", "Query"),
                        "query": base64.b64encode(query.encode("utf-8")).decode("ascii")}
        if count is not None:
            query_entity["detail"] = [{"type": "count", "valueString": str(count)}]
        event["entity"] = self._patient(patient_id) + [query_entity]
        return event

    def _studies(self, study_uids: Iterable[str]) -> list[dict]:
        return [{"what": {"identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"}},
                 "type": _coding(ENTITY_TYPE, "2", "System Object"), "role": _coding(OBJECT_ROLE, "3", "Report")}
                for uid in study_uids]

    def viewer(self, actor: Actor, patient_id: str, study_uids: list[str], outcome: str = SUCCESS) -> dict:
        """The viewer was given these Study Instance UIDs (IHE RAD-106 request)."""
        event = self._base(INSTANCES, "R", outcome, actor, "IHE.BasicAudit.PatientRead")
        event["entity"] = self._patient(patient_id) + self._studies(study_uids)
        return event

    def report_read(self, actor: Actor, patient_id: str, report_reference: str, outcome: str = SUCCESS) -> dict:
        """Hook: a DiagnosticReport read (BALP PatientRead); ``report_reference`` ``DiagnosticReport/id``."""
        event = self._base(READ, "R", outcome, actor, "IHE.BasicAudit.PatientRead")
        event["entity"] = self._patient(patient_id) + [
            {"what": {"reference": report_reference}, "type": _coding(ENTITY_TYPE, "2", "System Object"),
             "role": _coding(OBJECT_ROLE, "3", "Report")}]
        return event

    def thumbnail_read(self, actor: Actor, patient_id: str, study_uid: str, outcome: str = SUCCESS) -> dict:
        """Hook: a study thumbnail retrieved (DICOMweb rendered/thumbnail)."""
        event = self._base(INSTANCES, "R", outcome, actor, "IHE.BasicAudit.PatientRead")
        event["entity"] = self._patient(patient_id) + self._studies([study_uid])
        return event
