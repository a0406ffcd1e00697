"""Render one frame of a DICOM instance to PNG (pydicom + numpy + Pillow).

Pipeline (DICOM PS3.3 C.11 / PS3.4 N.2, as implemented by ``pydicom.pixels``):

* colour: ``RGB`` as is; ``YBR_*`` is converted to RGB by pydicom's decoder
  (``pixel_array`` default ``as_rgb``); ``PALETTE COLOR`` via ``apply_color_lut``;
  16-bit colour is scaled to 8 bits.
* greyscale: modality LUT / rescale (``apply_modality_lut``), then the VOI
  window from the file (``apply_voi_lut``) or, when absent, a window computed
  from the pixel range (0.5–99.5 percentiles); ``MONOCHROME1`` inverted.

Results are cached in memory (``lru_cache``) per ``(file, frame)``.
"""

from __future__ import annotations

import io
import threading
from functools import lru_cache

import numpy as np
from PIL import Image
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

from .dicom_source import load_dataset

_render_lock = threading.Lock()


class FrameOutOfRange(IndexError):
    """Requested frame number is not in ``1..NumberOfFrames``."""


def _to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    values = values.astype(np.float64)
    if high <= low:
        high = low + 1
    scaled = (np.clip(values, low, high) - low) / (high - low) * 255.0
    return np.rint(scaled).astype(np.uint8)


def _grey(ds, frame_pixels: np.ndarray) -> np.ndarray:
    values = apply_modality_lut(frame_pixels, ds)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        values = apply_voi_lut(values, ds, index=0)
        low, high = float(values.min()), float(values.max())
    else:
        low, high = (float(v) for v in np.percentile(values, (0.5, 99.5)))
        if high <= low:
            low, high = float(values.min()), float(values.max())
    grey = _to_uint8(values, low, high)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        grey = 255 - grey
    return grey


def _colour(ds, frame_pixels: np.ndarray) -> np.ndarray:
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        rgb = apply_color_lut(frame_pixels, ds)
    else:
        rgb = frame_pixels  # RGB, or YBR already converted to RGB by pydicom
    if rgb.dtype != np.uint8:
        max_value = 65535 if rgb.max() > 255 else 255
        rgb = _to_uint8(rgb, 0, max_value)
    return rgb


@lru_cache(maxsize=256)
def render_png(file_name: str, frame_number: int = 1) -> bytes:
    """PNG bytes of *frame_number* (1-based) of bundled file *file_name*.

    Size equals the DICOM Rows x Columns; mode ``L`` for greyscale, ``RGB`` for
    colour. Raises :class:`FrameOutOfRange` for a bad frame number and
    ``FileNotFoundError`` for an unknown file.
    """
    with _render_lock:
        ds = load_dataset(file_name)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if not 1 <= frame_number <= frames:
            raise FrameOutOfRange(f"frame {frame_number} not in 1..{frames}")
        pixels = ds.pixel_array
        frame_pixels = pixels[frame_number - 1] if frames > 1 else pixels
        if ds.PhotometricInterpretation == "PALETTE COLOR" or int(ds.SamplesPerPixel) == 3:
            image = Image.fromarray(_colour(ds, frame_pixels), mode="RGB")
        else:
            image = Image.fromarray(_grey(ds, frame_pixels), mode="L")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
