"""The pieces of a results page that ``fakeclr report`` and ``fakeclr study`` share: the style sheet, tables in
HTML and Markdown, and a PNG inlined as a data URI (so one .html file holds its pictures)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

__all__ = ["CSS", "data_uri", "html_table", "md_table"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.6em;margin-bottom:0}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0;font-size:0.92em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2}tr.diff td{background:#fff6d6}td.best{font-weight:bold;background:#e5f5e0}
.muted{color:#777;font-size:0.9em}.samples{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0}figure img{image-rendering:pixelated;border:1px solid #ccc;max-width:640px;width:100%}
figcaption{font-size:0.9em;color:#444}img.plot{max-width:100%}code{font-size:0.95em}
"""


def data_uri(path: Path) -> str:
    """A PNG file as a ``data:`` URI for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def html_table(header: list[str], rows: list[list[str]], classes: list[list[str]] | None = None,
               row_classes: list[str] | None = None) -> str:
    """An HTML table of text cells (escaped); ``classes[i][j]`` a cell's CSS class, ``row_classes[i]`` a row's."""
    e = html.escape
    out = ["<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>"]
    for i, row in enumerate(rows):
        rc = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join((f'<td class="{classes[i][j]}">' if classes and classes[i][j] else "<td>") + e(c) + "</td>"
                        for j, c in enumerate(row))
        out.append(f"<tr{rc}>{cells}</tr>")
    return "\n".join(out) + "</table>"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown (GitHub) table; ``|`` in a cell escaped."""
    def esc(s: str) -> str:
        return s.replace("|", "\\|")
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    return "\n".join(lines)
