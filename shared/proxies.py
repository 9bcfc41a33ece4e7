"""Who an HTTP request comes from when reverse proxies stand in front of a face (intake's API, the web console):
the address that connected, unless that is a proxy the installation trusts; then the nearest address in
X-Forwarded-For that is not one. A face's per-address limits count by this, so that behind a proxy one client
guessing keys or passwords cannot lock everyone else out, and a client cannot pick its own address either."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def networks(value: object, setting: str) -> list[Network]:
    """A `*_TRUSTED_PROXIES` setting: addresses or networks (CIDR), comma-separated; refused naming the bad one."""
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list | tuple) else [value]
    found = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            found.append(ipaddress.ip_network(text))
        except ValueError:
            raise ValueError(f"{setting}: '{text}' is not an IP address or network (like 10.0.0.5 or 10.0.0.0/24; a "
                             "network's host bits must be zero)") from None
    return found


def client_address(request: Request, trusted_proxies: Sequence[Network]) -> str:
    """The address a request comes from: the one that connected, unless that is a trusted proxy; then the nearest
    address in X-Forwarded-For that is not one (each proxy appends the address that connected to it, so what
    lies further left is only what the client claims). Without trusted proxies the header is never read."""
    peer = request.client.host if request.client else ""
    if not _among(_ip(peer), trusted_proxies):
        return peer
    hops = [hop for value in request.headers.getlist("x-forwarded-for") for hop in value.split(",")]
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:
            break  # not written by a proxy of ours: count the request as the proxy's
        if not _among(ip, trusted_proxies):
            return str(ip)
    return peer


def _ip(text: str) -> Address | None:
    """An address as proxies write it (`1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:5678`)."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return (ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else ip


def _among(ip: Address | None, trusted: Sequence[Network]) -> bool:
    return ip is not None and any(ip in network for network in trusted)


def counted_as(address: str) -> str:
    """Whose count a client address's requests go to, for a limit per client (intake's key checks, the console's
    log-ins): an IPv4 address itself (an IPv4-mapped IPv6 one too), an IPv6 address's /64 network (a home or office is
    given a whole /64, so one computer could otherwise use a fresh address for each try); anything else (no address)
    as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
