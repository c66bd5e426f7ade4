"""Who a client is, for limits: an IPv4 address, or an IPv6 client's /64 network.

One IPv6 subscriber gets a whole /64 (2^64 addresses) from the provider, so a limit per
IPv6 address is no limit at all: the login limits (``webapp.auth``) and the connection
share (``webapp.guard``) count a /64 as one client, as fail2ban and nginx setups do.
"""

from __future__ import annotations

import ipaddress


def client_key(address: str | None) -> str:
    """The key limits count ``address`` under; anything unparseable counts as itself."""
    if not address:
        return "?"
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
