"""Where a webhook may be sent: only http(s) URLs whose host resolves only to globally routable
addresses, whatever the spelling of the host; the rules themselves are Python's ipaddress ones."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from maintflow_core import ssrf
from maintflow_core.usecases.webhook_delivery import Policy

# Every form the issue names, with what it really is.
REFUSED_HOSTS = [
    ("127.0.0.1", "loopback"),
    ("127.1", "loopback"),  # short form
    ("2130706433", "loopback"),  # decimal
    ("0x7f000001", "loopback"),  # hex
    ("0177.0.0.1", "loopback"),  # octal
    ("0x7f.0.0.1", "loopback"),
    ("[::1]", "loopback"),
    ("[::ffff:127.0.0.1]", "carrying 127.0.0.1"),  # IPv4-mapped IPv6
    ("[::ffff:7f00:1]", "carrying 127.0.0.1"),
    ("[64:ff9b::7f00:1]", "carrying 127.0.0.1"),  # NAT64
    ("[2002:7f00:1::1]", "carrying 127.0.0.1"),  # 6to4
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.0.10", "private"),
    ("[fc00::1]", "private"),
    ("169.254.169.254", "link-local"),  # AWS, GCP, Azure metadata
    ("[fd00:ec2::254]", "private"),  # AWS metadata over IPv6
    ("100.100.100.200", "not a globally routable"),  # Alibaba metadata (shared space)
    ("168.63.129.16", "metadata"),  # Azure WireServer, on a routable address
    ("[fe80::1]", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("0", "unspecified"),
    ("[::]", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("[ff0e::1]", "multicast"),
    ("192.0.2.1", "private"),  # documentation ranges
    ("198.51.100.7", "private"),
    ("203.0.113.9", "private"),
    ("[2001:db8::1]", "private"),
    ("240.0.0.1", "private"),  # reserved
    ("100.64.0.1", "not a globally routable"),
]


async def no_dns(host: str, port: int) -> Sequence[str]:
    raise AssertionError(f"{host} is a literal address: no resolver query expected")


@pytest.mark.parametrize(("host", "why"), REFUSED_HOSTS)
async def test_a_url_on_a_non_global_address_is_refused_in_every_spelling(
    host: str, why: str
) -> None:
    with pytest.raises(ssrf.Refused, match=why):
        await ssrf.check_url(f"https://{host}:8443/hook", no_dns)


@pytest.mark.parametrize("host", ["93.184.215.14", "0x5db8d70e", "[2606:4700::6810:85e5]"])
async def test_a_url_on_a_global_address_is_allowed(host: str) -> None:
    await ssrf.check_url(f"https://{host}/hook", no_dns)


@pytest.mark.parametrize(
    ("answers", "allowed"),
    [
        (["93.184.215.14"], True),
        (["93.184.215.14", "10.0.0.5"], False),  # one bad address is enough
        (["::ffff:169.254.169.254"], False),
        (["127.0.0.1"], False),
        ([], False),
    ],
)
async def test_a_host_name_is_refused_when_any_address_it_resolves_to_is_refused(
    answers: list[str], allowed: bool
) -> None:
    async def resolver(host: str, port: int) -> Sequence[str]:
        assert (host, port) == ("hooks.example.com", 443)
        return answers

    if allowed:
        await ssrf.check_url("https://hooks.example.com/x", resolver)
    else:
        with pytest.raises(ssrf.Refused, match=r"hooks\.example\.com"):
            await ssrf.check_url("https://hooks.example.com/x", resolver)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://93.184.215.14/x", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://93.184.215.14:70/", "only http and https"),
        ("93.184.215.14/hook", "only http and https"),
        ("https:///path-only", "no host"),
        ("https://user:pw@93.184.215.14/", "credentials"),
        ("https://93.184.215.14:99999/", "not a valid URL"),
    ],
)
async def test_only_http_and_https_urls_with_a_host_are_accepted(url: str, why: str) -> None:
    with pytest.raises(ssrf.Refused, match=why):
        await ssrf.check_url(url, no_dns)


def test_backoff_doubles_up_to_the_maximum_with_up_to_half_of_it_jitter() -> None:
    policy = Policy(
        timeout_s=1, max_attempts=10, backoff_base_s=10, backoff_max_s=60, max_pending=5
    )
    assert [policy.backoff(n, lambda: 1.0).total_seconds() for n in range(1, 6)] == [
        10,
        20,
        40,
        60,
        60,
    ]
    assert [policy.backoff(n, lambda: 0.0).total_seconds() for n in range(1, 4)] == [5, 10, 20]
