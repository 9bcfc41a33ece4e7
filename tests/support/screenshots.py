"""`make screenshots` (`python -m tests.support.screenshots`): the console's pages as people see them, written to
docs/screenshots/<page>.png for the README.

It starts `reroute up --demo` in a temporary directory (the services, the console and the sample data, as
`make run` does), reaches each page as the accessibility test does (tests/support/console_pages.py: a new person
with the roles the page needs, logged in through the log-in page, with the referrals the page needs to show
something), and screenshots it in Debian's Chromium (REROUTE_CHROMIUM to use another), then shrinks it with pngquant
and optipng where they are installed (Debian's packages of those names: a third of the size, no visible change).
Every person and referral in them is made up."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from playwright.async_api import ViewportSize, async_playwright

from apps.console.settings import URL_FILE
from tests.support.console import CHROMIUM, ConsoleStack
from tests.support.console_pages import PAGES
from tests.support.local_up import LocalUp

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "screenshots"
VIEWPORT = ViewportSize(width=1280, height=800)


def file_name(route: str) -> str:
    """`/risk/audit` → `risk-audit.png`; `/referrals/{referral_id}` → `referrals-referral_id.png`; `/` → `home.png`."""
    return (route.strip("/").replace("/", "-").replace("{", "").replace("}", "") or "home") + ".png"


def shrink(path: Path) -> None:
    """Fewer colours (pngquant), then lossless recompression (optipng), each only if installed; never larger."""
    if shutil.which("pngquant"):
        subprocess.run(["pngquant", "--quality=70-95", "--speed=1", "--strip", "--skip-if-larger", "--force",
                        "--output", str(path), str(path)], check=False, capture_output=True)
    if shutil.which("optipng"):
        subprocess.run(["optipng", "-quiet", "-o2", str(path)], check=False, capture_output=True)


async def take(routes: Sequence[str], out: Path, root: Path) -> list[Path]:
    executable = shutil.which(CHROMIUM)
    if executable is None:
        raise SystemExit(f"no Chromium at {CHROMIUM}: install Debian's (`apt-get install chromium`) or set "
                         "REROUTE_CHROMIUM")
    up = LocalUp.launch(root / "data", "--demo", REROUTE_CONSOLE_LOGIN_ATTEMPTS="1000")
    written = []
    try:
        await up.until_running()
        home = root / "home"
        home.mkdir()
        stack = ConsoleStack(up, (up.data_dir / URL_FILE).read_text().strip(), home)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=executable, args=["--no-sandbox"] if os.geteuid() == 0 else [])
            try:
                for route in routes:
                    page = await PAGES[route](browser, stack)
                    await page.set_viewport_size(VIEWPORT)
                    path = out / file_name(route)
                    await page.screenshot(path=str(path), full_page=True, animations="disabled")
                    shrink(path)
                    written.append(path)
                    print(f"{route}: {path.relative_to(ROOT)}", flush=True)
                    await page.context.close()
            finally:
                await browser.close()
    finally:
        up.stop()
        up.drop_schemas()
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("routes", nargs="*", metavar="ROUTE",
                        help=f"only these pages (default: all of them: {', '.join(PAGES)})")
    args = parser.parse_args(argv)
    unknown = [r for r in args.routes if r not in PAGES]
    if unknown:
        parser.error(f"not a console page: {', '.join(unknown)} (the pages are {', '.join(PAGES)})")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="reroute-screenshots-") as root:
        written = asyncio.run(take(args.routes or list(PAGES), OUT, Path(root)))
    print(f"{len(written)} screenshots in {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
