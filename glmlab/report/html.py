"""Markdown to one self-contained HTML page, for glmlab's own reports (report.html,
compare.html).

The reports are written as markdown first, so the HTML never says something the markdown
does not. Only what the reports use is understood: ``#``-headings, pipe tables (``\\|`` in
a cell), ``- `` lists, images alone on a line (embedded as base64 data URIs), paragraphs,
and inline ``code``, ``**bold**`` and ``*italics*``.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path

_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #1d1d1f; background: #fff; }
h1 { border-bottom: 2px solid #3b6ea5; padding-bottom: .2em; }
h2 { color: #3b6ea5; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; max-width: 100%; font-size: 13px; }
th, td { border: 1px solid #c8d0d9; padding: .25em .45em; text-align: left;
         overflow-wrap: anywhere; }
th { background: #e8eef5; }
tr:nth-child(even) td { background: #f6f8fa; }
code { background: #f0f2f4; padding: 0 .25em; border-radius: 3px; }
strong { color: #a3321f; }
img { max-width: 100%; border: 1px solid #c8d0d9; }
"""

_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)]+)\)$")
_HEADING = re.compile(r"^(?P<hashes>#{1,6}) (?P<text>.*)$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def _inline(text: str) -> str:
    out = html.escape(text, quote=False).replace("\\|", "|")
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"\*([^*\s][^*]*?)\*", r"<em>\1</em>", out)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in _CELL_SPLIT.split(line.strip())[1:-1]]


def _image(alt: str, src: str, base_dir: Path) -> str:
    path = base_dir / src
    if not path.is_file():
        return f"<p><em>missing image {html.escape(src)}</em></p>"
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:{mime};base64,{data}"></p>'


def markdown_to_html(markdown: str, *, base_dir: str | Path, title: str) -> str:
    """A complete HTML page for ``markdown``; images are read from ``base_dir``."""
    base_dir = Path(base_dir)
    lines = markdown.splitlines()
    body: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            body.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if heading := _HEADING.match(line):
            flush()
            level = len(heading["hashes"])
            body.append(f"<h{level}>{_inline(heading['text'])}</h{level}>")
        elif image := _IMAGE.match(line):
            flush()
            body.append(_image(image["alt"], image["src"], base_dir))
        elif line.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            head, rest = rows[0], [r for r in rows[1:] if not all(set(c) <= {"-", ":"} for c in r)]
            body.append("<table><thead><tr>")
            body.append("".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead><tbody>")
            for r in rest:
                body.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>")
            body.append("</tbody></table>")
            continue
        elif line.startswith("- "):
            flush()
            body.append("<ul>")
            while i < len(lines) and lines[i].startswith("- "):
                body.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            body.append("</ul>")
            continue
        elif not line.strip():
            flush()
        else:
            paragraph.append(line)
        i += 1
    flush()
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
