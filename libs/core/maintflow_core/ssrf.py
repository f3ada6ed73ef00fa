"""Where a webhook may be sent (server-side request forgery guard): an http(s) URL whose host
resolves only to globally routable addresses. Checked when a webhook is registered and again,
by the workers' connection code, against the address actually connected to (DNS can change in
between). The address rules are Python's `ipaddress` ones (`is_global` and friends); this
module adds only what it lacks: IPv4 addresses carried inside IPv6 ones, legacy numeric host
spellings, and cloud metadata endpoints that sit on otherwise routable addresses."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""(host, port) → the addresses a connection to it would try, as text."""

# Metadata services that ipaddress does not already call non-global (169.254.169.254 is
# link-local, fd00:ec2::254 private, 100.100.100.200 shared address space): Azure's WireServer
# answers on a routable address.
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("168.63.129.16")})

RESOLVE_TIMEOUT_S = 5.0

# NAT64's well-known prefix carries an IPv4 address in its last 32 bits (RFC 6052).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# inet_aton's spellings of an IPv4 address: 1 to 4 parts, each decimal, 0x-hex or 0-octal
# ("2130706433", "0x7f000001", "0177.0.0.1", "127.1").
_LEGACY_IPV4 = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}", re.IGNORECASE)


class Refused(ValueError):
    """A URL or address a webhook may not reach; the message says why."""


class Target(NamedTuple):
    host: str
    port: int


def parse_url(url: str) -> Target:
    """The host and port of an http(s) URL; Refused for any other scheme, no host, credentials
    in the URL, or a bad port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Refused("only http and https URLs are allowed")
    if not parts.hostname:
        raise Refused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise Refused("the URL must not contain credentials")
    return Target(parts.hostname, port or (443 if scheme == "https" else 80))


def literal_address(host: str) -> Address | None:
    """`host` read as an IP address in any spelling a resolver would accept — IPv6 (with or
    without brackets, a zone index), dotted IPv4, and inet_aton's decimal, hex, octal and
    short forms — or None for a name."""
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if not _LEGACY_IPV4.fullmatch(text):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def refusal(address: Address) -> str | None:
    """Why a webhook may not connect to `address`, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address):
        for embedded in _embedded_ipv4(address):
            reason = refusal(embedded)
            if reason is not None:
                return f"an address carrying {embedded}, {reason}"
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for flag, reason in (
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a globally routable address"),
    ):
        if flag:
            return reason
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses a connection to `address` may end up at: IPv4-mapped (::ffff:a.b.c.d),
    6to4, Teredo and NAT64."""
    found = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [a for a in found if a is not None]


def check_addresses(host: str, addresses: Sequence[str]) -> list[Address]:
    """`addresses` (what `host` resolved to) parsed, if every one of them may be reached;
    Refused naming the first that may not."""
    if not addresses:
        raise Refused(f"{host} does not resolve to any address")
    parsed = []
    for text in addresses:
        address = ipaddress.ip_address(text)
        reason = refusal(address)
        if reason is not None:
            if literal_address(host) is not None:
                raise Refused(f"{host} is {reason}")
            raise Refused(f"{host} resolves to {address}, {reason}")
        parsed.append(address)
    return parsed


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system's resolver gives for a TCP connection to `host`."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise Refused(f"{host} did not resolve within {RESOLVE_TIMEOUT_S:g} s") from None
    except (OSError, UnicodeError) as exc:
        raise Refused(f"{host} does not resolve: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def resolve_checked(host: str, port: int, resolver: Resolver) -> list[Address]:
    """Every address a connection to `host` could reach, if all may be reached (Refused
    otherwise). A literal address, in any spelling, is checked without asking the resolver."""
    literal = literal_address(host)
    addresses = [str(literal)] if literal is not None else list(await resolver(host, port))
    return check_addresses(host, addresses)


async def check_url(url: str, resolver: Resolver = system_resolver) -> None:
    """Refused unless `url` is an http(s) URL whose host resolves only to addresses a webhook
    may reach."""
    target = parse_url(url)
    await resolve_checked(target.host, target.port, resolver)
