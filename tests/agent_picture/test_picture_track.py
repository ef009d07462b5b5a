import itertools
import threading

import av
import numpy as np
import pytest
from aiortc.mediastreams import VIDEO_CLOCK_RATE, MediaStreamError

import camera_agent.capture as capture_module
from camera_agent.capture import THREAD_PREFIX, Capture, CaptureError
from camera_agent.synthetic import SyntheticScene
from camera_agent.track import CaptureTrack


async def test_track_delivers_paced_frames() -> None:
    cap = Capture("synthetic", width=320, height=240, fps=20)
    await cap.open()
    track = CaptureTrack(cap)
    assert track.kind == "video"
    try:
        frames = [await track.recv() for _ in range(6)]
    finally:
        track.stop()
        await cap.close()
    pts = [f.pts for f in frames]
    assert all(isinstance(f, av.VideoFrame) for f in frames)
    assert all((f.width, f.height) == (320, 240) for f in frames)
    assert all(float(f.time_base) == 1 / VIDEO_CLOCK_RATE for f in frames)
    assert pts[0] == 0 and all(b > a for a, b in itertools.pairwise(pts))
    # paced at the capture's 20 fps (4500 ticks apart), not aiortc's default 30 fps
    assert pts[-1] >= 5 * 4500 * 0.9, pts
    assert frames[1].to_ndarray(format="bgr24").shape == (240, 320, 3)
    assert track.error is None


class _FailingScene(SyntheticScene):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0

    def frame(self, t: float) -> np.ndarray:
        self.calls += 1
        if self.calls > 3:
            raise RuntimeError("sensor gone")
        return super().frame(t)


async def test_track_ends_when_capture_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture_module, "SyntheticScene", _FailingScene)
    cap = Capture("synthetic", width=160, height=120, fps=30)
    await cap.open()
    track = CaptureTrack(cap)
    with pytest.raises(MediaStreamError):
        for _ in range(20):
            await track.recv()
    assert isinstance(track.error, CaptureError)
    assert track.error.reason == "read-failed"
    assert track.readyState == "ended"
    with pytest.raises(MediaStreamError):
        await track.recv()
    await cap.close()
    assert not [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]
