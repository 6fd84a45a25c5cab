"""The Jinja2 environment of the pages (templates/ beside this module) and its filters."""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

from cadsearch import __version__

__all__ = ["templates", "STATIC_DIR", "TEMPLATES_DIR"]

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATES_DIR = WEB_DIR / "templates"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.globals["version"] = __version__


def _percent(score: float) -> str:
    """0.873 → '87%' (people read whole percentages; one decimal under 10% so tiny scores are not '0%')."""
    value = 100.0 * float(score)
    return f"{value:.1f}%" if 0 < value < 10 else f"{value:.0f}%"


def _degrees(angle: float) -> str:
    """An angle in degrees, as people read it: '63°'."""
    return f"{int(round(float(angle)))}°"  # int: a small negative angle reads '0°', not '-0°'


def _filesize(n_bytes: float) -> str:
    """20971520 → '20 MB'; under a megabyte in kB."""
    n = float(n_bytes)
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 1024:.0f} kB"


templates.env.filters["percent"] = _percent
templates.env.filters["filesize"] = _filesize
templates.env.filters["degrees"] = _degrees
