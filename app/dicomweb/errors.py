"""Protocol facts of DICOMweb requests (DICOM PS3.18); the web layer decides what a clinician sees.

Each names the ``operation`` it happened in: ``"qido-studies"``, ``"qido-series"``, ``"qido-instances"``,
``"study-thumbnail"``, ``"series-thumbnail"``, ``"rendered"``.
"""

from __future__ import annotations


class DicomwebError(Exception):
    """Base: a DICOMweb ``operation`` failed."""

    def __init__(self, operation: str):
        super().__init__(operation)
        self.operation = operation


class DicomwebHttpError(DicomwebError):
    """The service answered HTTP ``status`` (≥ 300: redirects are never followed with credentials)."""

    def __init__(self, operation: str, status: int):
        super().__init__(operation)
        self.status = status

    @property
    def unsupported(self) -> bool:
        """The resource or media type is not offered here (400, 404, 405, 406, 415, 501): try the next fallback.
        PS3.18 §8.3.3 / §10.4.1.2: a server may not support thumbnails or a viewport."""
        return self.status in (400, 404, 405, 406, 415, 501)


class DicomwebBadContent(DicomwebError):
    """A 2xx answer of the wrong kind: ``problem`` is ``"content-type"`` (``media_type`` set), ``"invalid-json"``,
    ``"not-an-array"``, ``"not-an-image"``, ``"image-too-large"``."""

    def __init__(self, operation: str, problem: str, media_type: str = ""):
        super().__init__(operation)
        self.problem = problem
        self.media_type = media_type


class NoCredentials(DicomwebError):
    """No credentials are configured for this DICOMweb service, so nothing is sent to it."""

    def __init__(self):
        super().__init__("access")
