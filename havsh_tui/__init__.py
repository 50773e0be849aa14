"""havsh: hav.sh in a terminal, on your own servers."""

from __future__ import annotations

__version__ = "0.1.0"
