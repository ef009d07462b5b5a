import pytest

from camera_agent.capture import CaptureError, describe_source


@pytest.mark.parametrize(("source", "kind"), [
    ("synthetic", "synthetic"),
    ("synthetic:42", "synthetic"),
    ("0", "device"),
    ("12", "device"),
    ("/dev/video0", "device"),
    ("/dev/v4l/by-id/usb-cam-video-index0", "device"),
    ("rtsp://cam.local:554/stream1", "rtsp"),
    ("RTSP://cam.local/stream", "rtsp"),
    ("rtsps://user:pw@cam.local/stream", "rtsp"),
    ("/tmp/clip.avi", "file"),
    ("clip.mp4", "file"),
    ("synthetics.avi", "file"),
    ("-1", "file"),
])
def test_describe_source(source: str, kind: str) -> None:
    assert describe_source(source) == kind


def test_capture_error_reason() -> None:
    err = CaptureError("open-failed", "no such file")
    assert err.reason == "open-failed"
    assert err.detail == "no such file"
    assert "open-failed" in str(err)
    assert CaptureError("no-frames").reason == "no-frames"
