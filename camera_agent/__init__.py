"""Camera agent: runs on the in-home device; the camera is off except in an authorised look-in."""

__version__ = "0.1.0"
