"""Checks shared by the page tests: parse an HTML page and verify what it references."""
from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images, self.audio, self.ids, self.text, self.stack = [], [], [], [], []
        self.details_open: list[bool] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append((a.get("src", ""), a.get("alt")))
        elif tag == "audio":
            self.audio.append(a.get("src", ""))
        elif tag == "details":
            self.details_open.append("open" in a)
        if "id" in a:
            self.ids.append(a["id"])
        if tag not in ("img", "meta", "br", "source", "link"):
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse_page(index: Path) -> _Page:
    """Parse the page, check nesting, alt texts and that every referenced file exists."""
    page = _Page()
    html = index.read_text(encoding="utf-8")
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html), "external resource or JS"
    page.feed(html)
    page.close()
    assert page.stack == [], f"unclosed tags: {page.stack}"
    for src, alt in page.images:
        assert alt and alt.strip(), f"<img src={src!r}> has no alt text"
    for src in [s for s, _ in page.images] + page.audio:
        assert not src.startswith(("/", "http:", "https:", "file:")), f"{src!r} is not a relative path"
        assert (index.parent / unquote(src)).is_file(), f"{src!r} referenced by {index} does not exist"
    return page


def page_text(page: _Page) -> str:
    return " ".join(" ".join(page.text).split())


def inline_text(index: Path) -> str:
    """The page's text with tags dropped in place (``<b>x</b>,`` reads ``x,``), for sentence checks."""
    html = index.read_text(encoding="utf-8")
    body = html[html.index("<body"):]
    return " ".join(unescape(re.sub(r"<[^>]+>", "", body)).split())
