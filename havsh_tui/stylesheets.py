"""Where the .tcss files are, for the app and for screens that bring their own."""

from __future__ import annotations

from pathlib import Path


def styles_dir() -> Path:
    """The .tcss directory: inside the package in a wheel (hatch force-include maps the
    repo's top-level styles/ there), beside the package in a checkout."""
    packaged = Path(__file__).parent / "styles"
    if packaged.is_dir():
        return packaged
    return Path(__file__).parent.parent / "styles"
