"""Headless Chromium for the report tests: a page's layout at a given window width."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Runs after the page is laid out: how wide the document is and which tables or images
# stick out to the right of the window (hidden behind a horizontal scrollbar).
_PROBE = """<script>
(() => {
  const width = document.documentElement.clientWidth;
  const out = [...document.querySelectorAll("table, img")]
    .filter(e => e.getBoundingClientRect().right > width + 1)
    .map(e => e.tagName + ":" + (e.previousElementSibling || {}).textContent);
  document.body.setAttribute("data-layout", JSON.stringify(
    {width, scroll: document.documentElement.scrollWidth, overflowing: out}));
})();
</script>"""


def chromium_args(profile: Path, width: int, height: int) -> list[str]:
    return [
        CHROMIUM or "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ]


def page_layout(html_file: Path, tmp_path: Path, *, width: int = 1200) -> dict:
    """``{"width", "scroll", "overflowing"}`` of ``html_file`` in a ``width`` px window."""
    probe = tmp_path / f"probe_{html_file.name}"
    probe.write_text(html_file.read_text().replace("</body>", _PROBE + "</body>"))
    proc = subprocess.run(
        [*chromium_args(tmp_path / "profile", width, 900), "--dump-dom", probe.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r"data-layout=\"([^\"]*)\"", proc.stdout)
    assert found, proc.stderr[-2000:]
    return json.loads(found.group(1).replace("&quot;", '"'))
