"""The address of the client behind a request, for limits and logs.

Without a proxy (BEHIND_PROXY off) it is REMOTE_ADDR: X-Forwarded-For is whatever the
client chose to send. Behind PROXY_COUNT proxies of ours, each appends the address it
received the request from: the last PROXY_COUNT - 1 entries are our own proxies, and the
right-most entry that is not one of them, the PROXY_COUNT-th from the right, is the
client. Entries further left are the client's own word, never used.
https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/X-Forwarded-For#selecting_an_ip_address
"""

import ipaddress

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_ip(request) -> str | None:
    """The client's address as text, or None when the request does not say.

    With fewer X-Forwarded-For entries than proxies (a request that reached an inner
    proxy directly) every entry was written by one of ours, and the left-most is the
    client. An entry that is not an address leaves REMOTE_ADDR as the answer.
    """
    remote = parse_address(request.META.get("REMOTE_ADDR", ""))
    if settings.BEHIND_PROXY:
        entries = [entry for entry in request.headers.get("X-Forwarded-For", "").split(",") if entry.strip()]
        if entries:
            proxies = getattr(settings, "PROXY_COUNT", 1)
            remote = parse_address(entries[-min(proxies, len(entries))]) or remote
    return str(remote) if remote is not None else None


def parse_address(value: str) -> IPAddress | None:
    """An address from a header or REMOTE_ADDR, tolerating `1.2.3.4:port` and `[v6]:port`.

    An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, from a dual-stack socket) is the
    IPv4 address it carries, so one client is one address however it connected.
    """
    value = (value or "").strip()
    if value.startswith("[") and "]" in value:
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # IPv4 with a port; IPv6 has at least two colons
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
