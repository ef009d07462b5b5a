"""The service's own origin, as a browser names it in the Origin header."""

from __future__ import annotations

import pytest

from supervision.api.patrol import same_origin


@pytest.mark.parametrize(("origin", "public_url", "same"), [
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000", True),
    ("https://tillsyn.example.se", "https://tillsyn.example.se/", True),
    ("https://tillsyn.example.se", "https://Tillsyn.Example.se:443/app", True),
    ("http://tillsyn.example.se", "http://tillsyn.example.se:80", True),
    ("https://xn--tillsyn-g1a.se", "https://tillsynö.se", True),  # IDNA, as browsers send it
    ("http://[::1]:8000", "http://[::1]:8000", True),
    ("http://127.0.0.1:8001", "http://127.0.0.1:8000", False),  # another port
    ("http://tillsyn.example.se", "https://tillsyn.example.se", False),  # another scheme
    ("https://tillsyn.example.se:8443", "https://tillsyn.example.se", False),
    ("https://evil.tillsyn.example.se", "https://tillsyn.example.se", False),
    ("https://tillsyn.example.se.evil.org", "https://tillsyn.example.se", False),
    ("null", "http://127.0.0.1:8000", False),
    ("", "http://127.0.0.1:8000", False),
    (None, "http://127.0.0.1:8000", False),
    ("http://127.0.0.1:99999", "http://127.0.0.1:8000", False),  # no such port
    ("http://tillsyn.example.se:0", "http://tillsyn.example.se", False),
    ("ws://127.0.0.1:8000", "http://127.0.0.1:8000", False),
    ("http://127.0.0.1:8000", "not a url", False),
])
def test_same_origin(origin: str | None, public_url: str, same: bool) -> None:
    assert same_origin(origin, public_url) is same
