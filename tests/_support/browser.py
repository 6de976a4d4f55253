"""A report page opened in a real headless Chromium (Debian's /usr/bin/chromium, driven by playwright).

``open_page(html, screenshot)`` loads the file, records console errors, page
errors and every request that is not the file itself (a self-contained page
makes none), measures each figure's rendered size and writes a full-page
screenshot. Without Chromium or playwright the test is skipped, except under
CI=true, where that is a failure (scripts/test.sh installs both).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("REFCOMP_CHROMIUM", "/usr/bin/chromium")
#: the flags of a quiet, offline, throw-away browser (the profile is a fresh folder per test)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _need(what: str, fix: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} not found: CI must have it ({fix})")
    pytest.skip(f"{what} not found ({fix})")


def open_page(html: Path, screenshot: Path, *, width: int = 1100) -> dict:
    """Load ``html`` in headless Chromium; return {"console_errors", "page_errors", "requests",
    "figures": [(kind, width, height)], "scripts", "title"} and write the full-page ``screenshot``."""
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        _need(f"Chromium at {CHROMIUM}", "apt-get install chromium, or set REFCOMP_CHROMIUM")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("the playwright package", "pip install 'refcomp[test]'")
    url = Path(html).resolve().as_uri()
    out = {"console_errors": [], "page_errors": [], "requests": []}
    with sync_playwright() as pw:
        # a persistent context is how playwright takes a --user-data-dir: a fresh one per call
        context = pw.chromium.launch_persistent_context(
            str(screenshot.parent / f".{screenshot.stem}-profile"), executable_path=CHROMIUM, headless=True,
            args=FLAGS, viewport={"width": width, "height": 800})
        try:
            page = context.new_page()
            page.on("console", lambda m: m.type == "error" and out["console_errors"].append(m.text))
            page.on("pageerror", lambda e: out["page_errors"].append(str(e)))
            page.on("request", lambda r: r.url != url and out["requests"].append(r.url))
            page.goto(url, wait_until="load")
            out["figures"] = page.evaluate("""() => [...document.querySelectorAll('figure > svg, figure > img')]
                .map(e => { const r = e.getBoundingClientRect(); return [e.tagName.toLowerCase(), r.width, r.height]; })""")
            out["scripts"] = page.evaluate("() => document.querySelectorAll('script').length")
            out["title"] = page.title()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            context.close()
    print(f"screenshot: {screenshot}")
    return out
