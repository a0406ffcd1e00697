"""Protocol facts of FHIR reads and searches (FHIR R4 §3.1.0 RESTful API); the web layer words them.

Each carries the ``resource_type`` and ``interaction`` (``"read"``, ``"search"``)
it happened in, so that a refused Patient read is not mistaken for a refused
ImagingStudy search.
"""

from __future__ import annotations


class FhirError(Exception):
    """Base: a FHIR interaction on ``resource_type`` failed."""

    def __init__(self, resource_type: str, interaction: str):
        super().__init__(f"{interaction} {resource_type}")
        self.resource_type = resource_type
        self.interaction = interaction


class FhirHttpError(FhirError):
    """The server answered HTTP ``status`` ≥ 400; ``outcome``: its OperationOutcome text, or ``""``."""

    def __init__(self, resource_type: str, interaction: str, status: int, outcome: str = ""):
        super().__init__(resource_type, interaction)
        self.status = status
        self.outcome = outcome


class FhirUnauthorized(FhirHttpError):
    """HTTP 401: the access token is expired or revoked (the caller may refresh once)."""

    def __init__(self, resource_type: str, interaction: str, outcome: str = ""):
        super().__init__(resource_type, interaction, 401, outcome)


class FhirRedirect(FhirError):
    """HTTP 3xx: not followed, the bearer token never goes to a redirected location."""

    def __init__(self, resource_type: str, interaction: str, status: int):
        super().__init__(resource_type, interaction)
        self.status = status


class FhirBadContent(FhirError):
    """A 2xx answer that is not FHIR JSON of the expected kind.

    ``problem``: ``"content-type"`` (``media_type`` set), ``"invalid-json"``,
    ``"not-a-resource"``, ``"wrong-resource-type"`` (``found`` set; ``outcome``
    when it was an OperationOutcome).
    """

    def __init__(self, resource_type: str, interaction: str, problem: str, *, media_type: str = "",
                 found: str = "", outcome: str = ""):
        super().__init__(resource_type, interaction)
        self.problem = problem
        self.media_type = media_type
        self.found = found
        self.outcome = outcome
