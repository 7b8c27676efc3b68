"""lrlab's version, at the bottom of the layers so that anything may record it (run records,
the downloader's user agent) without importing the package root."""

__version__ = "0.1.0"
