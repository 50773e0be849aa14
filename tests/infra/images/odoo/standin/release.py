"""Which Odoo series this stand-in plays (baked into the image at build time)."""

from __future__ import annotations

import os
import re

_SERIES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "SERIES")


def _read_series() -> str:
    # The image writes SERIES from its ODOO_VERSION build arg, so a runtime env change can't
    # turn a 17.0 image into another series (real Odoo can't either). The env is a fallback
    # for running the program from the source tree.
    try:
        with open(_SERIES_FILE, encoding="ascii") as fh:
            value = fh.read().strip()
    except OSError:
        value = os.environ.get("ODOO_VERSION", "17.0").strip()
    if not re.fullmatch(r"\d+\.\d+", value):
        value = "17.0"
    return value


serie = major_version = _read_series()
major = int(serie.split(".")[0])
version_info = (major, 0, 0, "final", 0, "")
version = serie
description = "Odoo Server"
product_name = "Odoo"
