"""Picture processing on the device: privacy masks, fitting, low-light enhancement.

Pure functions on numpy arrays; no I/O. The capture applies masks to every raw frame
before anything else sees it, and once more at the end so masked areas leave the device
as exact black whatever resizing or enhancement did around them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import cv2
import numpy as np

Polygon = Sequence[tuple[float, float]]

_clahe_local = threading.local()


def _clahe(clip_limit: float) -> cv2.CLAHE:
    """One cached CLAHE object per thread and clip limit (CLAHE objects keep state)."""
    cache: dict[float, cv2.CLAHE] | None = getattr(_clahe_local, "cache", None)
    if cache is None:
        cache = _clahe_local.cache = {}
    clahe = cache.get(clip_limit)
    if clahe is None:
        clahe = cache[clip_limit] = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(8, 8))
    return clahe


def enhance_low_light(frame: np.ndarray, clip_limit: float = 2.0) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation on luma (Y of YCrCb).

    Colour (Cr, Cb) is left alone, so a dim picture gets readable without colour shifts.
    Accepts BGR uint8 (or a single-channel uint8 image); returns a new array of the
    same shape and dtype.
    """
    if frame.dtype != np.uint8:
        raise ValueError(f"expected uint8 frame, got {frame.dtype}")
    clahe = _clahe(float(clip_limit))
    if frame.ndim == 2:
        return clahe.apply(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected a BGR frame, got shape {frame.shape}")
    ycrcb = cv2.cvtColor(frame, cv2.COLOR_BGR2YCrCb)
    ycrcb[:, :, 0] = clahe.apply(np.ascontiguousarray(ycrcb[:, :, 0]))
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR)


def normalise_masks(masks: Sequence[Polygon]) -> tuple[tuple[tuple[float, float], ...], ...]:
    """Validate mask polygons (>= 3 finite points, normalised coordinates) and freeze them.

    Coordinates slightly outside 0..1 are allowed (clipped when drawn); anything else is
    a configuration error (ValueError).
    """
    out = []
    for i, poly in enumerate(masks):
        points = []
        for point in poly:
            if len(point) != 2:
                raise ValueError(f"mask {i}: point {point!r} is not (x, y)")
            x, y = float(point[0]), float(point[1])
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError(f"mask {i}: non-finite point {point!r}")
            if not (-0.5 <= x <= 1.5 and -0.5 <= y <= 1.5):
                raise ValueError(f"mask {i}: point {point!r} is not normalised (0..1)")
            points.append((x, y))
        if len(points) < 3:
            raise ValueError(f"mask {i}: a polygon needs at least 3 points")
        out.append(tuple(points))
    return tuple(out)


def _pixel_polygons(masks: Sequence[Polygon], width: int, height: int) -> list[np.ndarray]:
    polys = []
    for poly in masks:
        pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        px = np.empty(pts.shape, dtype=np.int32)
        px[:, 0] = np.clip(np.rint(pts[:, 0] * width), 0, width - 1)
        px[:, 1] = np.clip(np.rint(pts[:, 1] * height), 0, height - 1)
        polys.append(px)
    return polys


def apply_masks(frame: np.ndarray, masks: Sequence[Polygon]) -> np.ndarray:
    """Fill each polygon (normalised 0..1 coordinates of width/height) with black.

    Returns a new array; with no masks the frame itself is returned unchanged.
    """
    if not masks:
        return frame
    height, width = frame.shape[:2]
    out = frame.copy()
    color = (0,) * (frame.shape[2] if frame.ndim == 3 else 1)
    cv2.fillPoly(out, _pixel_polygons(masks, width, height), color, lineType=cv2.LINE_8)
    return out


def fit(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to width x height if the frame differs (area filter when shrinking)."""
    h, w = frame.shape[:2]
    if (w, h) == (width, height):
        return frame
    shrinking = width * height < w * h
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(frame, (width, height), interpolation=interpolation)
