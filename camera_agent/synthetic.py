"""A synthetic night picture for tests, demos and devices without a camera.

A dim bedroom seen from a corner: wall, floor, a faint moonlit window, a nightstand, a
bed with a pillow and a person under a blanket who breathes and now and then turns over.
A wall clock's second hand and a slowly pulsing standby LED keep consecutive frames
different without putting any time text in the picture. Sensor noise comes from a few
precomputed tiles, so a frame costs a background copy, a handful of filled shapes and two
saturating additions. Everything is a pure function of (seed, t).

Opening is cheap, as a camera that is ready should be: the room and the noise tiles are
pure functions of (size, seed), kept for the process (one scene per agent), and each
noise tile is made when a frame first needs it, so the first frame waits for one tile
rather than all of them (making them all up front, on every open, held a look-in's first
frame back by 70-200 ms).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable
from typing import TypeVar, cast

import cv2
import numpy as np

_NOISE_TILES = 3
_NOISE_MARGIN = 16
_NOISE_STEPS = 97          # distinct (tile, offset) choices, indexed by frame number
_NOISE_RATE = 30.0         # noise changes at most this often per second of t
_SHIFT = 4                 # sub-pixel precision for cv2 drawing (1/16 px)
_TURN_SECONDS = 2.5


def _smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


class SyntheticScene:
    """Night-like test picture made with OpenCV: a dim bedroom (bed, pillow, wall, a faint
    window), a figure under a blanket that breathes and turns over now and then, a
    timestamp-free small moving detail so frames differ, and sensor noise. Deterministic
    from a seed."""

    def __init__(self, width: int = 640, height: int = 480, seed: int = 0) -> None:
        if width < 16 or height < 16:
            raise ValueError("synthetic scene needs at least 16x16 pixels")
        self.width = int(width)
        self.height = int(height)
        self.seed = int(seed)
        rng = np.random.default_rng([self.seed, 0])
        self._breath_period = float(rng.uniform(3.6, 4.6))
        self._breath_phase = float(rng.uniform(0.0, 2.0 * math.pi))
        self._first_side = 1.0 if rng.random() < 0.5 else -1.0
        self._led_period = float(rng.uniform(1.8, 2.6))
        self._clock_offset = float(rng.uniform(0.0, 60.0))
        self._turn_rng = np.random.default_rng([self.seed, 1])
        self._turns: list[float] = [float(self._turn_rng.uniform(8.0, 30.0))]
        self._background = _shared(
            (type(self), self.width, self.height, self.seed, "room"),
            lambda: self._render_room(np.random.default_rng([self.seed, 2])))
        steps = np.random.default_rng([self.seed, 4])
        self._noise_choice = [
            (int(steps.integers(_NOISE_TILES)),
             int(steps.integers(_NOISE_MARGIN + 1)),
             int(steps.integers(_NOISE_MARGIN + 1)))
            for _ in range(_NOISE_STEPS)
        ]

    # ----------------------------------------------------------------- geometry helpers
    def _p(self, x: float, y: float) -> tuple[int, int]:
        """Normalised point -> integer pixel point."""
        return round(x * self.width), round(y * self.height)

    def _ps(self, x: float, y: float) -> tuple[int, int]:
        """Normalised point -> fixed-point pixel point for drawing with shift=_SHIFT."""
        f = 1 << _SHIFT
        return round(x * self.width * f), round(y * self.height * f)

    def _axes(self, ax: float, ay: float) -> tuple[int, int]:
        f = 1 << _SHIFT
        return max(1, round(ax * self.width * f)), max(1, round(ay * self.height * f))

    def _poly(self, points: list[tuple[float, float]]) -> np.ndarray:
        return np.array([self._p(x, y) for x, y in points], dtype=np.int32)

    # ----------------------------------------------------------------- static room
    def _render_room(self, rng: np.random.Generator) -> np.ndarray:
        w, h = self.width, self.height
        img = np.zeros((h, w, 3), np.uint8)
        # wall with a slight vertical gradient, floor below it
        horizon = int(0.58 * h)
        ys = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None]
        wall = np.array([36, 31, 29], np.float32) * (0.85 + 0.15 * ys)
        img[:horizon] = wall[:, None, :].astype(np.uint8)
        img[horizon:] = (20, 22, 25)
        cv2.line(img, (0, horizon), (w - 1, horizon), (16, 17, 19), max(1, h // 160))
        # the window: faint moonlight, mullions, a soft glow around it
        glow = np.zeros((h, w), np.float32)
        cv2.rectangle(glow, self._p(0.05, 0.08), self._p(0.22, 0.38), 1.0, -1)
        k = max(3, (w // 12) | 1)
        glow = np.asarray(cv2.GaussianBlur(glow, (k, k), 0), np.float32)
        moon = np.array([26, 20, 14], np.float32)  # bluish
        img = np.clip(img.astype(np.float32) + glow[:, :, None] * moon, 0, 255).astype(np.uint8)
        cv2.rectangle(img, self._p(0.06, 0.09), self._p(0.21, 0.37), (78, 66, 56), -1)
        cv2.line(img, self._p(0.135, 0.09), self._p(0.135, 0.37), (30, 28, 27), max(1, w // 200))
        cv2.line(img, self._p(0.06, 0.23), self._p(0.21, 0.23), (30, 28, 27), max(1, w // 200))
        cv2.rectangle(img, self._p(0.05, 0.08), self._p(0.22, 0.38), (24, 24, 26), max(1, w // 220))
        # moonlight patch on the floor
        patch = self._poly([(0.08, 0.80), (0.30, 0.78), (0.36, 0.98), (0.10, 1.0)])
        overlay = img.copy()
        cv2.fillPoly(overlay, [patch], (46, 40, 36), cv2.LINE_AA)
        img = np.asarray(cv2.addWeighted(overlay, 0.5, img, 0.5, 0), np.uint8)
        # wall clock face (the second hand is drawn per frame)
        cx, cy = self._p(0.31, 0.17)
        r = max(4, int(0.035 * w))
        cv2.circle(img, (cx, cy), r, (48, 48, 46), -1, cv2.LINE_AA)
        cv2.circle(img, (cx, cy), r, (24, 24, 24), max(1, w // 320), cv2.LINE_AA)
        for i in range(12):
            a = i * math.pi / 6
            p1 = (int(cx + 0.8 * r * math.cos(a)), int(cy + 0.8 * r * math.sin(a)))
            p2 = (int(cx + 0.95 * r * math.cos(a)), int(cy + 0.95 * r * math.sin(a)))
            cv2.line(img, p1, p2, (22, 22, 22), 1, cv2.LINE_AA)
        hour = float(rng.uniform(0.0, 2.0 * math.pi))
        cv2.line(img, (cx, cy), (int(cx + 0.5 * r * math.sin(hour)),
                                 int(cy - 0.5 * r * math.cos(hour))), (20, 20, 20), 2, cv2.LINE_AA)
        minute = float(rng.uniform(0.0, 2.0 * math.pi))
        tip = (int(cx + 0.8 * r * math.sin(minute)), int(cy - 0.8 * r * math.cos(minute)))
        cv2.line(img, (cx, cy), tip, (20, 20, 20), 1, cv2.LINE_AA)
        # nightstand with a small device on it
        cv2.rectangle(img, self._p(0.08, 0.55), self._p(0.25, 0.80), (26, 30, 36), -1)
        cv2.rectangle(img, self._p(0.08, 0.55), self._p(0.25, 0.58), (34, 38, 45), -1)
        cv2.line(img, self._p(0.09, 0.67), self._p(0.24, 0.67), (18, 20, 24), 1, cv2.LINE_AA)
        cv2.rectangle(img, self._p(0.15, 0.51), self._p(0.21, 0.55), (22, 22, 24), -1)
        # bed: headboard, frame, mattress and sheet in perspective
        cv2.rectangle(img, self._p(0.34, 0.28), self._p(0.93, 0.47), (30, 36, 44), -1)
        cv2.rectangle(img, self._p(0.34, 0.28), self._p(0.93, 0.30), (38, 44, 52), -1)
        frame_side = self._poly([(0.31, 0.47), (0.96, 0.47), (1.02, 0.97), (0.22, 0.97)])
        cv2.fillPoly(img, [frame_side], (24, 28, 34), cv2.LINE_AA)
        sheet = self._poly([(0.33, 0.46), (0.94, 0.46), (0.99, 0.90), (0.25, 0.90)])
        cv2.fillPoly(img, [sheet], (54, 54, 52), cv2.LINE_AA)
        # pillow
        cv2.ellipse(img, self._p(0.53, 0.51), self._p(0.13, 0.045), 0, 0, 360,
                    (68, 68, 66), -1, cv2.LINE_AA)
        cv2.ellipse(img, self._p(0.53, 0.525), self._p(0.12, 0.02), 0, 0, 180,
                    (58, 58, 57), 2, cv2.LINE_AA)
        # vignette: corners darker, as a cheap lens at night
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        d = ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) / 0.5
        vignette = (1.0 - 0.45 * d)[:, :, None]
        room: np.ndarray = np.clip(img.astype(np.float32) * vignette, 0, 255).astype(np.uint8)
        return _frozen(room)

    def _make_noise(self, tile: int) -> tuple[np.ndarray, np.ndarray]:
        """One tile of sensor noise, as (positive part, negative part) to add and subtract."""
        rng = np.random.default_rng([self.seed, 3, tile])
        h, w = self.height + _NOISE_MARGIN, self.width + _NOISE_MARGIN
        noise = rng.standard_normal((h, w, 3), dtype=np.float32)
        noise *= 1.2  # chroma
        luma = rng.standard_normal((h, w, 1), dtype=np.float32)
        luma *= 3.0
        noise += luma
        np.rint(noise, out=noise)
        return _frozen(np.clip(noise, 0, 255).astype(np.uint8)), \
            _frozen(np.clip(-noise, 0, 255).astype(np.uint8))

    # ----------------------------------------------------------------- motion
    def _side(self, t: float) -> tuple[float, float]:
        """(side in [-1, 1], turning effort in [0, 1]) at time t."""
        while self._turns[-1] <= t:
            self._turns.append(self._turns[-1] + float(self._turn_rng.uniform(25.0, 70.0)))
        done = bisect.bisect_right(self._turns, t - _TURN_SECONDS)
        side = self._first_side * (-1.0 if done % 2 else 1.0)
        if done < len(self._turns) and self._turns[done] <= t:
            progress = (t - self._turns[done]) / _TURN_SECONDS
            side *= 1.0 - 2.0 * _smoothstep(progress)
            return side, math.sin(math.pi * min(1.0, max(0.0, progress)))
        return side, 0.0

    # ----------------------------------------------------------------- a frame
    def frame(self, t: float) -> np.ndarray:
        """BGR uint8 (height, width, 3) picture at t seconds since start."""
        t = max(0.0, float(t))
        img = self._background.copy()
        side, effort = self._side(t)
        breath = math.sin(2.0 * math.pi * t / self._breath_period + self._breath_phase)

        # blanket over the lower bed, with the body's hump on top
        blanket = self._poly([(0.34, 0.58), (0.93, 0.57), (0.98, 0.89), (0.27, 0.90)])
        cv2.fillPoly(img, [blanket], (60, 52, 47), cv2.LINE_AA)
        hump_y = 0.075 + 0.007 * breath + 0.035 * effort
        cv2.ellipse(img, self._ps(0.60 + 0.035 * side, 0.69 - 0.5 * (hump_y - 0.075)),
                    self._axes(0.22, hump_y), 4.0 * side, 0, 360,
                    (70, 61, 55), -1, cv2.LINE_AA, _SHIFT)
        cv2.ellipse(img, self._ps(0.60 + 0.035 * side, 0.66 - 0.5 * (hump_y - 0.075)),
                    self._axes(0.16, hump_y * 0.45), 4.0 * side, 180, 360,
                    (78, 69, 62), -1, cv2.LINE_AA, _SHIFT)
        # head on the pillow: face towards the camera on one side, hair on the other
        face = 0.5 + 0.5 * side
        head_color = (28 + 28 * face, 30 + 34 * face, 34 + 42 * face)
        cv2.ellipse(img, self._ps(0.52 + 0.03 * side, 0.505), self._axes(0.036, 0.046),
                    10.0 * side, 0, 360, head_color, -1, cv2.LINE_AA, _SHIFT)
        # blanket edge over the shoulder
        cv2.ellipse(img, self._ps(0.55 + 0.03 * side, 0.585), self._axes(0.10, 0.022),
                    0, 180, 360, (66, 58, 52), -1, cv2.LINE_AA, _SHIFT)

        # the small moving detail: clock second hand and a pulsing standby LED
        cx, cy = self._p(0.31, 0.17)
        r = max(4, int(0.035 * self.width))
        a = 2.0 * math.pi * ((t + self._clock_offset) % 60.0) / 60.0
        cv2.line(img, (cx, cy), (round(cx + 0.9 * r * math.sin(a)),
                                 round(cy - 0.9 * r * math.cos(a))),
                 (30, 30, 60), 1, cv2.LINE_AA)
        led = 0.5 + 0.5 * math.sin(2.0 * math.pi * t / self._led_period)
        cv2.circle(img, self._p(0.195, 0.53), max(1, self.width // 320),
                   (20, 40 + 120 * led, 30 + 30 * led), -1, cv2.LINE_AA)

        # sensor noise: one of a few tiles at a frame-dependent offset (views, no copies)
        tile, dy, dx = self._noise_choice[int(t * _NOISE_RATE) % _NOISE_STEPS]
        window = (slice(dy, dy + self.height), slice(dx, dx + self.width))
        pos, neg = _shared((type(self), self.width, self.height, self.seed, tile),
                           lambda: self._make_noise(tile))
        cv2.add(img, pos[window], dst=img)
        cv2.subtract(img, neg[window], dst=img)
        return img


T = TypeVar("T")
#: the rooms and noise tiles made so far, by (class, width, height, seed, part); an agent
#: has one scene, so a few entries hold everything
_SHARED: dict[tuple[object, ...], object] = {}
_SHARED_MAX = 2 * (_NOISE_TILES + 1)
_shared_lock = threading.Lock()


def _shared(key: tuple[object, ...], make: Callable[[], T]) -> T:
    """A pure function of ``key``, made once per process (outside the lock: two capture
    threads making the same part at once both get an equal one)."""
    with _shared_lock:
        found = _SHARED.get(key)
    if found is None:
        found = make()
        with _shared_lock:
            while len(_SHARED) >= _SHARED_MAX:
                del _SHARED[next(iter(_SHARED))]
            _SHARED[key] = found
    return cast(T, found)


def _frozen(array: np.ndarray) -> np.ndarray:
    """Shared between scenes: nobody may draw on it."""
    array.setflags(write=False)
    return array
