"""Thumbnail images checked and re-encoded with Pillow before any byte reaches the browser.

An upstream body is accepted only when Pillow decodes it as the format its ``Content-Type`` declares
(``image/jpeg`` → JPEG, ``image/png`` → PNG), its dimensions are at most :data:`MAX_SOURCE_PIXELS`
(decompression bombs are refused before pixels are decoded), and it decodes fully. It is then
scaled to fit inside the requested box (aspect ratio kept) and re-encoded as baseline JPEG, quality
85, without metadata (no EXIF, comments, ICC or text chunks pass through).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from .errors import DicomwebBadContent

MAX_SOURCE_PIXELS = 4096 * 4096
FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}
OUTPUT_TYPE = "image/jpeg"


@dataclass(frozen=True)
class Thumbnail:
    """A re-encoded thumbnail: ``content`` (JPEG bytes), ``media_type`` (``image/jpeg``), ``width`` / ``height``
    (pixels), ``source``: which step produced it (``"study-thumbnail"``, ``"series-thumbnail"``, ``"rendered"``)."""

    content: bytes
    media_type: str
    width: int
    height: int
    source: str


def reencode(content: bytes, media_type: str, box: tuple[int, int], operation: str) -> Thumbnail:
    """Check ``content`` (see module doc) and return it fitted into ``box`` as a :class:`Thumbnail`.

    Raises :class:`~app.dicomweb.errors.DicomwebBadContent` ``"not-an-image"`` (undecodable, or another
    format than declared) or ``"image-too-large"``.
    """
    expected = FORMATS.get(media_type)
    try:
        with Image.open(io.BytesIO(content)) as image:
            if expected is None or image.format != expected:
                raise DicomwebBadContent(operation, "not-an-image", media_type)
            width, height = image.size
            if width <= 0 or height <= 0 or width * height > MAX_SOURCE_PIXELS:
                raise DicomwebBadContent(operation, "image-too-large", media_type)
            image.load()
            picture = image.convert("L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGB")
    except DicomwebBadContent:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        raise DicomwebBadContent(operation, "not-an-image", media_type) from None
    picture.thumbnail(box)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=85)
    return Thumbnail(out.getvalue(), OUTPUT_TYPE, picture.width, picture.height, operation)
