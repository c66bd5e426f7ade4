"""Every user-facing string is translatable, and the German catalog is complete."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).parents[1]
TEMPLATES = sorted((ROOT / "templates").glob("*.html"))
LANGUAGES = ["de"]
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
TEXT_ATTRIBUTES = {"alt", "title", "placeholder", "aria-label"}
ALLOWED = {"puccicam"}  # the product's name


class LiteralText(HTMLParser):
    """Collects text and text attributes that are not Jinja expressions."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.code_depth = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("code", "pre"):
            self.code_depth += 1
        for name, value in attrs:
            if name in TEXT_ATTRIBUTES and value and re.search(r"[A-Za-z]", value):
                self.found.append(f"{tag}[{name}]={value!r}")

    def handle_endtag(self, tag):
        if tag in ("code", "pre"):
            self.code_depth -= 1

    def handle_data(self, data):
        words = [w for w in re.findall(r"[^\W\d_]+", data) if w not in ALLOWED]
        if words and not self.code_depth:
            self.found.append(data.strip())


def _literals(text: str) -> list[str]:
    parser = LiteralText()
    # A Jinja expression becomes a placeholder character, so attributes that hold
    # only expressions come out empty of letters.
    parser.feed(JINJA.sub("\u2022", text))
    return parser.found


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_templates_hold_no_untranslated_text(template):
    assert _literals(template.read_text()) == []


def test_the_checker_catches_literal_text():
    assert _literals("<p>Hello</p>") == ["Hello"]
    assert _literals('<img alt="a dog">') == ["img[alt]='a dog'"]
    assert _literals("<p>{{ _('Hello') }}</p><code>puccicam user add</code>") == []


def _source_messages() -> set:
    method_map = [("webapp/**.py", "python"), ("templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), method_map, keywords=keywords
    ):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


def _catalog(language: str):
    path = ROOT / "webapp" / "translations" / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        return read_po(fh, locale=language)


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_has_every_message_translated(language):
    catalog = _catalog(language)
    entries = {m.id if isinstance(m.id, str) else tuple(m.id): m for m in catalog if m.id}
    messages = _source_messages()
    assert len(messages) > 40
    missing = sorted(str(m) for m in messages if m not in entries)
    assert not missing, f"{language} catalog lacks {missing}: run scripts/i18n"
    untranslated = [
        str(k)
        for k, m in entries.items()
        if k in messages
        and (m.fuzzy or not all(m.string if isinstance(m.string, tuple) else [m.string]))
    ]
    assert not untranslated, f"{language}: translate {untranslated}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_compiled_catalog_matches_the_po_file(language):
    catalog = _catalog(language)
    mo_path = ROOT / "webapp" / "translations" / language / "LC_MESSAGES" / "messages.mo"

    def flat(messages) -> dict:
        return {
            tuple(m.id) if isinstance(m.id, list | tuple) else m.id: tuple(m.string)
            if isinstance(m.string, list | tuple)
            else m.string
            for m in messages
            if m.id and not m.fuzzy
        }

    with mo_path.open("rb") as fh:
        compiled = flat(read_mo(fh))
    expected = flat(catalog)
    assert compiled == expected, "messages.mo is stale: run scripts/i18n"
