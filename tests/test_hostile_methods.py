"""Unexpected HTTP methods on every route, known and made-up, from an owner and an
anonymous visitor: refused, nothing leaked, nothing changed (``Site.refused``,
tests/helpers/site.py).
"""

from __future__ import annotations

import re

import pytest

from tests.helpers.rawhttp import build

# A real waitress server per test, about a second each to start and stop: with the
# other hostile files, some 25 s; scripts/test and CI pass --slow.
pytestmark = pytest.mark.slow

ROUTE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
UNEXPECTED_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "TRACE", "OPTIONS", "PROPFIND",
                      "MKCOL", "CONNECT", "FOO", "G@T", "get", "X" * 300]  # fmt: skip


def _concrete(rule, site) -> str:
    samples = {"name": site.photo, "filename": "style.css"}
    missing = set(rule.arguments) - samples.keys()
    assert not missing, f"{rule.rule}: add a sample value for {missing} here"
    return ROUTE_ARGUMENT.sub(lambda m: samples[m.group(1)], rule.rule)


def test_unexpected_methods_are_refused_on_every_route(site, app):
    owner, _token = site.owner()
    rules = list(app.url_map.iter_rules())
    assert {rule.endpoint for rule in rules} >= {"gallery.photo_bytes", "auth.logout"}
    for rule in rules:
        url = _concrete(rule, site)
        # Not rule.methods as it stands: Flask would add OPTIONS there by itself.
        meant = rule.methods - {"OPTIONS"}
        for method in UNEXPECTED_METHODS:
            if method in meant:
                continue
            for who, cookies in (("owner", owner), ("anonymous", None)):
                what = f"{who} {method[:12]} {url}"
                site.refused(what, build(method, url, cookies=cookies), anonymous=False)
    assert site.has_access(owner)
