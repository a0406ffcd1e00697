"""FHIR R4 Endpoint resources of the sandbox (FHIR R4 §Endpoint; ImagingStudy.endpoint).

* ``Endpoint/sandbox-iid`` — ``connectionType`` ``ihe-iid``, address
  ``{PUBLIC_BASE_URL}/IHEInvokeImageDisplay`` (the IID display, RAD-106).
* ``Endpoint/sandbox-dicomweb`` — ``connectionType`` ``dicom-wado-rs``, address
  ``{PUBLIC_BASE_URL}/dicomweb`` (QIDO-RS and WADO-RS base, :mod:`sandbox.dicomweb`).
* The HL7 examples ``example-iid`` and ``example-wadors`` (verbatim, from ``data/``).

Codes: ``http://terminology.hl7.org/CodeSystem/endpoint-connection-type``.
"""

from __future__ import annotations

from typing import Any

from .records import DICOMWEB_ENDPOINT_ID, IID_ENDPOINT_ID
from .state import SandboxState

CONNECTION_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"


def sandbox_endpoints(public_base_url: str) -> dict[str, dict[str, Any]]:
    """The sandbox's own Endpoint resources by id (addresses on *public_base_url*)."""
    return {
        IID_ENDPOINT_ID: {
            "resourceType": "Endpoint",
            "id": IID_ENDPOINT_ID,
            "status": "active",
            "connectionType": {"system": CONNECTION_TYPE_SYSTEM, "code": "ihe-iid"},
            "name": "Sandbox PACS Invoke Image Display (IHE IID, RAD-106)",
            "payloadType": [{"text": "DICOM IID"}],
            "address": public_base_url + "/IHEInvokeImageDisplay",
        },
        DICOMWEB_ENDPOINT_ID: {
            "resourceType": "Endpoint",
            "id": DICOMWEB_ENDPOINT_ID,
            "status": "active",
            "connectionType": {"system": CONNECTION_TYPE_SYSTEM, "code": "dicom-wado-rs"},
            "name": "Sandbox PACS DICOMweb (QIDO-RS, WADO-RS metadata, rendered, thumbnail)",
            "payloadType": [{"text": "DICOM WADO-RS"}, {"text": "DICOM QIDO-RS"}],
            "payloadMimeType": ["application/dicom+json", "image/jpeg", "image/png"],
            "address": public_base_url + "/dicomweb",
        },
    }


def endpoint(state: SandboxState, endpoint_id: str) -> dict[str, Any] | None:
    """Endpoint resource by id: the sandbox's own, else an HL7 example, else None."""
    own = sandbox_endpoints(state.config["PUBLIC_BASE_URL"]).get(endpoint_id)
    return own if own is not None else state.dataset.endpoint(endpoint_id, state.iid_base_url)


def referenced_endpoints(state: SandboxState, resources: list[dict]) -> list[dict[str, Any]]:
    """Distinct Endpoint resources referenced by ``resources[*].endpoint`` (first-seen order, unknown skipped)."""
    ids = dict.fromkeys(
        ref["reference"].removeprefix("Endpoint/")
        for resource in resources
        for ref in resource.get("endpoint", [])
        if ref.get("reference", "").startswith("Endpoint/")
    )
    found = (endpoint(state, endpoint_id) for endpoint_id in ids)
    return [e for e in found if e is not None]
