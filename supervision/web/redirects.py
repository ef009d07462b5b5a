"""Redirects stay on this service: a ``next`` after login, the way back after the
language switch. Browsers are more lenient than URL parsers (a backslash is a slash, tabs
and newlines vanish), so a target is accepted only in a form no browser can read as
another host."""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import urlsplit, urlunsplit

#: controls, space and backslash: browsers read "\" as "/" and drop tabs and newlines,
#: so "/\evil.example" and "/<tab>/evil.example" both lead to another host
_NOT_IN_A_LOCAL_PATH = re.compile(r"[\x00-\x20\x7f\\]")


def local_path(target: str | None) -> str | None:
    """``target`` if it is a path on this service ("/rounds", "/manage?x=1"), else None:
    no scheme, no host, no "//" (another host to a browser), nothing a browser rewrites."""
    if (not target or len(target) > 2048 or not target.startswith("/")
            or target.startswith("//") or _NOT_IN_A_LOCAL_PATH.search(target)):
        return None
    try:
        parts = urlsplit(target)
    except ValueError:
        return None
    return target if not parts.scheme and not parts.netloc else None


def same_origin_path(url: str | None, origins: Collection[str]) -> str | None:
    """The path and query of ``url`` if it is on one of ``origins`` ("https://host:port",
    lower case), else None; for going back to a Referer without leaving the service."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if f"{parts.scheme}://{parts.netloc}".lower() not in origins:
        return None
    return local_path(urlunsplit(("", "", parts.path or "/", parts.query, "")))


def origin_of(url: str) -> str:
    """"scheme://host[:port]" of a URL, lower case, as browsers send it in Origin."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()
