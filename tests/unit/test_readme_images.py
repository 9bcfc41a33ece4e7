"""The README's pictures of the console, read from README.md as a Markdown reader renders it: each one is a file in
docs/screenshots that `make screenshots` writes for a page of the console (tests/support/console_pages.py), each has
alt text that says what it shows, and the "For schedulers" and "For operators" parts show their pages."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from tests.support.console_pages import PAGES
from tests.support.readme import README
from tests.support.screenshots import OUT, ROOT, file_name


@dataclass(frozen=True)
class Image:
    src: str
    alt: str
    line: int  # 1-based, where its paragraph starts

    def __str__(self) -> str:
        return f"README.md:{self.line} {self.src}"


class _ImgTags(HTMLParser):
    """`<img>` written as HTML in the README."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.found: list[Image] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            given = dict(attrs)
            self.found.append(Image(given.get("src") or "", given.get("alt") or "", self.line))


def readme_images(text: str) -> list[Image]:
    """Every image of a Markdown text, as `![alt](src)` (alt text over several lines too) or as an HTML `<img>`."""
    found: list[Image] = []
    for token in MarkdownIt("commonmark").parse(text):
        line = token.map[0] + 1 if token.map else 0
        html = [token.content] if token.type == "html_block" else []
        for child in token.children or []:
            if child.type == "image":
                found.append(Image(str(child.attrs.get("src", "")), child.content, line))
            elif child.type == "html_inline":
                html.append(child.content)
        for written in html:
            tags = _ImgTags(line)
            tags.feed(written)
            found += tags.found
    return found


IMAGES = readme_images(README.read_text(encoding="utf-8"))
SCREENSHOTS = {file_name(route): route for route in PAGES}


def test_the_readme_shows_pictures_of_the_console() -> None:
    assert len(IMAGES) >= 2, [str(i) for i in IMAGES]


@pytest.mark.parametrize("image", IMAGES, ids=str)
def test_each_picture_is_a_screenshot_of_a_console_page_that_exists(image: Image) -> None:
    path = (ROOT / image.src).resolve()
    assert path.parent == OUT, f"{image}: not in {OUT.relative_to(ROOT)}, where `make screenshots` writes them"
    assert path.name in SCREENSHOTS, (f"{image}: no page of the console is screenshot as {path.name} "
                                      f"(tests/support/console_pages.py PAGES: {sorted(SCREENSHOTS)})")
    assert path.is_file(), f"{image} is missing: `make screenshots {SCREENSHOTS[path.name]}` writes it"


@pytest.mark.parametrize("image", IMAGES, ids=str)
def test_each_picture_says_what_it_shows(image: Image) -> None:
    alt = " ".join(image.alt.split())
    assert len(alt.split()) >= 3, f"{image}: alt text {alt!r} does not say what it shows"


@pytest.mark.parametrize("part", ["**For schedulers**", "**For operators**"])
def test_the_schedulers_and_operators_parts_show_their_pages(part: str) -> None:
    """Issue 14's "Done when": these parts of the README show the pages (a picture before the next part)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(n for n, line in enumerate(lines, 1) if line.startswith(part))
    end = next((n for n, line in enumerate(lines, 1) if n > start and line.startswith(("**For ", "## "))),
               len(lines) + 1)
    shown = [str(i) for i in IMAGES if start <= i.line < end]
    assert shown, f"{part} (README.md:{start}-{end - 1}) shows no page of the console"


def test_an_image_is_found_however_it_is_written() -> None:
    """The reader above finds the forms a README may use, so that none escapes the checks."""
    found = readme_images('![one,\nover two lines](docs/a.png)\n\ntext ![](b.png) and <img src="c.png">\n\n'
                          '<p><img alt="four" src="d.png"></p>\n\n![ref][r]\n\n[r]: e.png\n')
    assert [(i.src, i.alt) for i in found] == [("docs/a.png", "one,\nover two lines"), ("b.png", ""), ("c.png", ""),
                                               ("d.png", "four"), ("e.png", "ref")]
