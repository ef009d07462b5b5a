import asyncio
import itertools
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import camera_agent.capture as capture_module
from camera_agent.capture import THREAD_PREFIX, Capture, CaptureError
from camera_agent.synthetic import SyntheticScene

LEVELS = (30, 80, 130, 180, 230)


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX) and t.is_alive()]


class Calls:
    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0

    def on_open(self) -> None:
        self.opened += 1

    def on_close(self) -> None:
        self.closed += 1


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """A 5-frame MJPG clip at 320x240; frame i is uniformly grey at LEVELS[i]."""
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    assert writer.isOpened()
    for level in LEVELS:
        writer.write(np.full((240, 320, 3), level, np.uint8))
    writer.release()
    return path


def _index(frame: np.ndarray) -> int:
    return int(np.argmin([abs(float(frame.mean()) - lv) for lv in LEVELS]))


async def test_file_capture_reads_loops_and_releases(clip: Path) -> None:
    calls = Calls()
    cap = Capture(str(clip), width=640, height=480, fps=30, enhance=False,
                  on_open=calls.on_open, on_close=calls.on_close)
    assert not cap.is_open and calls.opened == 0
    assert not _reader_threads(), "nothing may run before open()"
    await cap.open()
    assert cap.is_open and calls.opened == 1
    indices = []
    for _ in range(14):
        frame = await cap.read()
        assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8
        indices.append(_index(frame))
    assert any(b < a for a, b in itertools.pairwise(indices)), indices  # looped
    assert len(set(indices)) >= 3
    await cap.close()
    assert not cap.is_open
    assert (calls.opened, calls.closed) == (1, 1)
    assert not _reader_threads()
    await cap.close()                       # idempotent
    assert calls.closed == 1
    with pytest.raises(CaptureError) as err:
        await cap.read()
    assert err.value.reason == "read-failed"


async def test_file_capture_is_paced_to_fps(clip: Path) -> None:
    cap = Capture(str(clip), fps=20, enhance=False)
    await cap.open()
    try:
        await cap.read()
        start = time.monotonic()
        for _ in range(6):
            await cap.read()
        elapsed = time.monotonic() - start
    finally:
        await cap.close()
    assert elapsed >= 5 / 20, elapsed          # 6 frames at 20 fps: no bursts
    assert not _reader_threads()


async def test_synthetic_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls()
    mask = [(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]
    cap = Capture("synthetic:3", width=320, height=240, fps=30, masks=[mask],
                  on_open=calls.on_open, on_close=calls.on_close)
    await cap.open()
    frames = [await cap.read() for _ in range(4)]
    await cap.close()
    assert (calls.opened, calls.closed) == (1, 1)
    assert not _reader_threads()
    for f in frames:
        assert f.shape == (240, 320, 3) and f.dtype == np.uint8
        assert not f[:120, :160].any(), "masked area must be exact black after enhancement"
        assert f[120:, 160:].mean() > 20
    assert not np.array_equal(frames[0], frames[-1])


async def test_synthetic_enhance_brightens() -> None:
    plain = SyntheticScene(320, 240, seed=0).frame(0.5)
    cap = Capture("synthetic", width=320, height=240, fps=30)
    await cap.open()
    try:
        enhanced = await cap.read()
    finally:
        await cap.close()
    assert cv2.cvtColor(enhanced, cv2.COLOR_BGR2GRAY).std() > cv2.cvtColor(
        plain, cv2.COLOR_BGR2GRAY).std()


@pytest.mark.parametrize("source", ["/nonexistent/clip.avi", "99", "/dev/video99"])
async def test_missing_source_fails_to_open_quickly(source: str) -> None:
    calls = Calls()
    cap = Capture(source, open_deadline_s=2.0, on_open=calls.on_open, on_close=calls.on_close)
    start = time.monotonic()
    with pytest.raises(CaptureError) as err:
        await cap.open()
    assert time.monotonic() - start < 2.0
    assert err.value.reason == "open-failed"
    assert not cap.is_open
    await cap.close()
    assert (calls.opened, calls.closed) == (0, 0)
    assert not _reader_threads()


async def test_garbage_file_fails_to_open(tmp_path: Path) -> None:
    path = tmp_path / "not-a-video.avi"
    path.write_bytes(b"\x00garbage" * 100)
    cap = Capture(str(path), open_deadline_s=2.0)
    with pytest.raises(CaptureError) as err:
        await cap.open()
    assert err.value.reason in ("open-failed", "no-frames")
    await cap.close()
    assert not _reader_threads()


class _StallingScene(SyntheticScene):
    """Delivers a few frames, then blocks (a camera that stops delivering)."""

    release = threading.Event()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0

    def frame(self, t: float) -> np.ndarray:
        self.calls += 1
        if self.calls > 3:
            self.release.wait(5.0)
        return super().frame(t)


async def test_stall_raises_read_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture_module, "SyntheticScene", _StallingScene)
    monkeypatch.setattr(capture_module, "STALL_SECONDS", 0.3)
    _StallingScene.release.clear()
    calls = Calls()
    cap = Capture("synthetic", width=160, height=120, fps=30,
                  on_open=calls.on_open, on_close=calls.on_close)
    await cap.open()
    with pytest.raises(CaptureError) as err:
        for _ in range(10):
            await cap.read()
    assert err.value.reason == "read-failed"
    _StallingScene.release.set()
    await cap.close()
    assert (calls.opened, calls.closed) == (1, 1)
    assert not _reader_threads()


async def test_cancelled_open_still_releases() -> None:
    calls = Calls()
    cap = Capture("synthetic", fps=30, on_open=calls.on_open, on_close=calls.on_close)
    task = asyncio.create_task(cap.open())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await cap.close()
    assert not _reader_threads()
    assert calls.opened == calls.closed


class _SilentScene(SyntheticScene):
    """Opens, but never delivers a first frame until released."""

    release = threading.Event()

    def frame(self, t: float) -> np.ndarray:
        self.release.wait(5.0)
        return super().frame(t)


async def test_no_first_frame_is_no_frames_within_deadline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture_module, "SyntheticScene", _SilentScene)
    _SilentScene.release.clear()
    calls = Calls()
    cap = Capture("synthetic", width=160, height=120, open_deadline_s=0.5,
                  on_open=calls.on_open, on_close=calls.on_close)
    start = time.monotonic()
    with pytest.raises(CaptureError) as err:
        await cap.open()
    assert time.monotonic() - start < 0.7
    assert err.value.reason == "no-frames"
    _SilentScene.release.set()
    await cap.close()
    assert (calls.opened, calls.closed) == (0, 0)
    assert not _reader_threads()
