import cv2
import numpy as np
import pytest

from camera_agent.processing import apply_masks, enhance_low_light, fit, normalise_masks
from camera_agent.synthetic import SyntheticScene


def _frame(w: int = 100, h: int = 80) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(30, 220, (h, w, 3), dtype=np.uint8)


def test_rectangle_mask_blacks_out_exactly_the_region() -> None:
    frame = _frame()
    out = apply_masks(frame, [[(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)]])
    expected = frame.copy()
    expected[20:61, 25:76] = 0          # x 25..75, y 20..60 inclusive
    assert np.array_equal(out, expected)
    assert frame[40, 50].any(), "input must not be modified"


def test_triangle_mask_inside_black_outside_unchanged() -> None:
    frame = _frame(200, 100)
    out = apply_masks(frame, [[(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]])
    assert (out[5, 5] == 0).all() and (out[10, 150] == 0).all() and (out[80, 10] == 0).all()
    assert np.array_equal(out[95, 190], frame[95, 190])
    assert np.array_equal(out[60, 150], frame[60, 150])
    # several polygons, and a whole-frame mask
    two = apply_masks(frame, [[(0, 0), (0.1, 0), (0.1, 0.1)], [(0.9, 0.9), (1, 0.9), (1, 1)]])
    assert (two[1, 15] == 0).all() and (two[98, 196] == 0).all()
    assert not apply_masks(frame, [[(0, 0), (1, 0), (1, 1), (0, 1)]]).any()


def test_no_masks_is_a_no_op_and_bad_masks_are_rejected() -> None:
    frame = _frame()
    assert apply_masks(frame, []) is frame
    with pytest.raises(ValueError):
        normalise_masks([[(0, 0), (1, 1)]])
    with pytest.raises(ValueError):
        normalise_masks([[(0, 0), (1, 0), (40, 30)]])      # pixels, not normalised
    with pytest.raises(ValueError):
        normalise_masks([[(0, 0), (1, 0), (float("nan"), 1)]])
    assert normalise_masks([[[0, 0], [1, 0], [1, 1]]]) == (((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)),)


def test_enhance_raises_contrast_of_a_dim_frame() -> None:
    dim = SyntheticScene(320, 240, seed=4).frame(2.0)
    out = enhance_low_light(dim)
    assert out.shape == dim.shape and out.dtype == np.uint8
    luma_in = cv2.cvtColor(dim, cv2.COLOR_BGR2GRAY)
    luma_out = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)
    assert luma_out.std() > 1.3 * luma_in.std()
    assert luma_out.mean() > luma_in.mean()
    # a flat dark frame with a few dim objects: contrast goes up too
    toy = np.full((120, 160, 3), 18, np.uint8)
    cv2.rectangle(toy, (20, 20), (70, 90), (32, 30, 34), -1)
    cv2.circle(toy, (115, 60), 25, (42, 40, 44), -1)
    toy_out = cv2.cvtColor(enhance_low_light(toy), cv2.COLOR_BGR2GRAY)
    toy_in = cv2.cvtColor(toy, cv2.COLOR_BGR2GRAY)
    assert np.ptp(toy_out) > np.ptp(toy_in)
    # single channel works too, and the cached CLAHE gives the same answer twice
    assert enhance_low_light(luma_in).shape == luma_in.shape
    assert np.array_equal(enhance_low_light(dim), out)


def test_fit() -> None:
    frame = _frame(100, 80)
    assert fit(frame, 100, 80) is frame
    assert fit(frame, 50, 40).shape == (40, 50, 3)
    assert fit(frame, 640, 480).shape == (480, 640, 3)
