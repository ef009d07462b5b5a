"""Supervision: the central service of Nattillsyn."""

__version__ = "0.1.0"
