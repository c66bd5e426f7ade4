"""Who counts as one client for the limits: an IPv4 address, or an IPv6 /64."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from webapp.clients import client_key
from webapp.guard import _address


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("not an address", "not an address"),
        (None, "?"),
    ],
)
def test_client_key(address, key):
    assert client_key(address) == key


def test_the_connection_share_counts_a_64_as_one_client():
    one = SimpleNamespace(addr=("2001:db8:1:2::a", 1))
    other = SimpleNamespace(addr=("2001:db8:1:2::b", 2))
    assert _address(one) == _address(other) == "2001:db8:1:2::/64"
    assert _address(SimpleNamespace(addr=None)) is None
