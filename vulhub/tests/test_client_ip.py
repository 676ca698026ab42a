"""vulhub.lib.client_ip: who is asking, without trusting what the client may forge."""

import pytest
from django.test import RequestFactory

from vulhub.lib.client_ip import client_ip, parse_address


def request(remote="10.0.0.2", forwarded=None):
    headers = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **headers)


def test_without_a_proxy_it_is_remote_addr_whatever_the_header_says(settings):
    settings.BEHIND_PROXY = False

    assert client_ip(request("198.51.100.7", "203.0.113.1")) == "198.51.100.7"


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (1, "203.0.113.1", "203.0.113.1"),
        # the client prepended a lie; our proxy appended what it saw
        (1, "6.6.6.6, 203.0.113.1", "203.0.113.1"),
        (1, "6.6.6.6,203.0.113.1 ", "203.0.113.1"),
        # two proxies: the outer one wrote the client, the inner one wrote the outer one
        (2, "6.6.6.6, 203.0.113.1, 10.0.0.9", "203.0.113.1"),
        # fewer entries than proxies: all ours, the left-most is the client
        (3, "203.0.113.1, 10.0.0.9", "203.0.113.1"),
        # ports and brackets some proxies add
        (1, "203.0.113.1:51234", "203.0.113.1"),
        (1, "[2001:db8::1]:443", "2001:db8::1"),
        (1, "::ffff:203.0.113.1", "203.0.113.1"),
        # not an address where ours should be: fall back to the proxy itself
        (1, "203.0.113.1, unknown", "10.0.0.2"),
        (1, "", "10.0.0.2"),
    ],
)
def test_behind_proxies_it_is_the_right_most_entry_not_written_about_ours(settings, proxies, forwarded, expected):
    settings.BEHIND_PROXY = True
    settings.PROXY_COUNT = proxies

    assert client_ip(request(forwarded=forwarded)) == expected


def test_behind_a_proxy_without_the_header_it_is_remote_addr(settings):
    settings.BEHIND_PROXY = True

    assert client_ip(request("10.0.0.2")) == "10.0.0.2"


@pytest.mark.parametrize("value", ["", "unknown", "999.1.1.1", "1.2.3.4.5", "<script>"])
def test_garbage_is_no_address(value):
    assert parse_address(value) is None


def test_no_remote_addr_is_none(settings):
    settings.BEHIND_PROXY = False

    assert client_ip(request("")) is None
