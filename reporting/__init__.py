"""Reports people read, rendered from Jinja2 templates with one shared stylesheet.

The model card (``models.building.card``), the data validation report (``validation.report``) and the
monitoring report (``monitoring.drift``, with ``monitoring.outcomes``' sections) each build a plain
context (numbers, words, DataFrames) and hand it to ``render``. The templates live in
``reporting/templates/``: ``base.html.j2`` holds the page frame and inlines ``style.css`` (the one
stylesheet); ``macros.html.j2`` holds the table, image and list blocks every report uses, so an
empty table reads as a sentence, never as a header row with nothing under it.

Every page is self-contained and leaks nothing: the stylesheet is inline, images are ``data:`` URIs,
and every value is HTML-escaped (autoescaping) and then has its URL schemes defanged (``http://``
becomes ``http&#58;//``), so no text typed into a field can become a fetch or a link.
"""

from __future__ import annotations

import base64
import html
import math
import re
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from markupsafe import Markup, escape

TEMPLATES = Path(__file__).resolve().parent / "templates"
_URL = re.compile(r"(?i)\b(https?|ftp)://")


def defang(text: str) -> str:
    """Escaped text with URL schemes made inert (``http&#58;//``)."""
    return _URL.sub(lambda m: f"{m.group(1)}&#58;//", text)


def safe_text(value: Any) -> Markup:
    """Any value as HTML: escaped, URL schemes defanged; None as nothing."""
    if value is None:
        return Markup("")
    return Markup(defang(str(escape(value))))


def fmt(value: Any, digits: int = 3, missing: str = "-") -> str:
    """One value as text: ``digits`` decimals for floats (whole numbers without), yes/no for
    booleans, ``missing`` for None and NaN, lists joined with commas."""
    if isinstance(value, np.generic):  # a numpy scalar as the Python value it holds
        value = value.item()
    if value is None:
        return missing
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return missing
        return f"{value:.0f}" if value.is_integer() else f"{value:.{digits}f}"
    if isinstance(value, tuple | list):
        return ", ".join(fmt(v, digits, missing) for v in value)
    try:
        import pandas as pd

        if pd.isna(value):
            return missing
    except (TypeError, ValueError, ImportError):
        pass
    return str(value)


MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


def data_uri(path: Path) -> str | None:
    """An image file as a ``data:`` URI, or None when it is missing or not an image."""
    path = Path(path)
    mime = MIME.get(path.suffix.lower())
    if mime is None or not path.is_file():
        return None
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def figure_uri(fig, dpi: int = 90) -> str:
    """A matplotlib figure as a PNG ``data:`` URI (the figure is closed)."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def rows_of(frame: Any) -> tuple[list[str], list[tuple]]:
    """(column names, rows) of a DataFrame, for the table macro."""
    return [str(c) for c in frame.columns], list(frame.itertuples(index=False, name=None))


@cache
def _env():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html", "html.j2"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=lambda v: v if isinstance(v, Markup) else safe_text(v),
    )
    env.filters["fmt"] = fmt
    env.filters["rows"] = rows_of
    env.filters["md"] = md_text
    env.filters["mdrow"] = md_row
    return env


def md_text(value: Any) -> Markup:
    """Text for a Markdown cell or line: escaped as HTML (renderers pass raw HTML through; quotes
    are left as they are), URL schemes defanged, pipes and newlines neutralised."""
    text = html.escape("" if value is None else str(value), quote=False)
    return Markup(defang(text).replace("|", "&#124;").replace("\n", " "))


def md_row(values: Any, formatted: bool = False) -> Markup:
    """One Markdown table row: ``| a | b |`` (cells through ``fmt`` unless ``formatted``)."""
    cells = [md_text(v if formatted else fmt(v)) for v in values]
    return Markup("| " + " | ".join(cells) + " |")


def render(template: str, **context: Any) -> str:
    """Render ``reporting/templates/<template>`` with ``context``."""
    return _env().get_template(template).render(**context)
