import time

import cv2
import numpy as np

from camera_agent.synthetic import SyntheticScene


def _luma(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def test_shape_dtype_and_dim() -> None:
    for seed in (0, 1, 7):
        scene = SyntheticScene(640, 480, seed=seed)
        for t in (0.0, 3.3, 61.0):
            f = scene.frame(t)
            assert f.shape == (480, 640, 3) and f.dtype == np.uint8
            assert 20 <= _luma(f).mean() <= 50
    assert SyntheticScene(320, 240).frame(1.0).shape == (240, 320, 3)


def test_frames_differ_over_time_beyond_noise() -> None:
    scene = SyntheticScene(seed=3)
    a, b = scene.frame(1.0), scene.frame(2.0)
    assert not np.array_equal(a, b)
    blur_a = cv2.GaussianBlur(a, (9, 9), 0).astype(np.int16)
    blur_b = cv2.GaussianBlur(b, (9, 9), 0).astype(np.int16)
    assert np.abs(blur_a - blur_b).max() > 5          # hand, LED, breathing: not just noise


def test_turns_over_now_and_then() -> None:
    scene = SyntheticScene(seed=5)
    first_turn = scene._turns[0]
    head = (slice(200, 290), slice(280, 400))
    before = cv2.GaussianBlur(scene.frame(first_turn - 1.0), (9, 9), 0)[head].astype(np.int16)
    after = cv2.GaussianBlur(scene.frame(first_turn + 4.0), (9, 9), 0)[head].astype(np.int16)
    assert np.abs(before - after).mean() > 2


def test_deterministic_by_seed() -> None:
    a, b = SyntheticScene(seed=11), SyntheticScene(seed=11)
    # order of calls does not matter: frame(t) is a function of (seed, t)
    late = a.frame(200.0)
    assert np.array_equal(a.frame(4.2), b.frame(4.2))
    assert np.array_equal(late, b.frame(200.0))
    assert not np.array_equal(SyntheticScene(seed=12).frame(4.2), a.frame(4.2))


def test_cost_per_frame() -> None:
    scene = SyntheticScene(640, 480, seed=0)
    scene.frame(0.0)
    n = 100
    start = time.perf_counter()
    for i in range(n):
        scene.frame(i / 10)
    ms = (time.perf_counter() - start) / n * 1000
    print(f"synthetic 640x480: {ms:.2f} ms/frame")
