"""The ``osdface`` command line. It imports the library; nothing in the library imports it."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
