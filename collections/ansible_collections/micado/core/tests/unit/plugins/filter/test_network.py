"""Unit tests for the micado.core network filters."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.micado.core.plugins.filter.network import (
    FilterModule,
    cidr_of,
    cidr_overlaps,
    cidr_valid,
    ip_in_cidr,
)


@pytest.mark.parametrize(("value", "expected"), [
    ("10.42.0.0/16", True),
    ("fd00:42::/56", True),
    ("10.42.0.1/16", False),   # host bits set
    ("10.42.0.0", False),      # no prefix
    ("10.42.0.0/33", False),
    ("not-a-net", False),
    ("", False),
])
def test_cidr_valid(value, expected):
    assert cidr_valid(value) is expected


@pytest.mark.parametrize(("first", "second", "expected"), [
    ("10.42.0.0/16", "10.43.0.0/16", False),
    ("10.42.0.0/16", "10.42.7.0/24", True),
    ("10.0.0.0/8", "10.43.0.0/16", True),
    ("10.43.0.0/16", "10.0.0.0/8", True),
    ("10.42.0.0/16", "fd00::/8", False),
    ("10.77.0.0/24", "10.42.0.0/16", False),
])
def test_cidr_overlaps(first, second, expected):
    assert cidr_overlaps(first, second) is expected


def test_cidr_overlaps_rejects_garbage():
    with pytest.raises(AnsibleFilterError, match="not a valid network"):
        cidr_overlaps("10.42.0.0/16", "ten")


@pytest.mark.parametrize(("address", "netmask", "expected"), [
    ("192.168.1.20", "255.255.255.0", "192.168.1.0/24"),
    ("192.168.1.20", "24", "192.168.1.0/24"),
    ("192.168.1.20", 24, "192.168.1.0/24"),
    ("10.77.0.10/24", None, "10.77.0.0/24"),
    ("2001:db8::5", "64", "2001:db8::/64"),
    ({"address": "10.77.0.10", "netmask": "255.255.255.0", "network": "10.77.0.0"}, None, "10.77.0.0/24"),
])
def test_cidr_of(address, netmask, expected):
    assert cidr_of(address, netmask) == expected


def test_cidr_of_rejects_garbage():
    with pytest.raises(AnsibleFilterError):
        cidr_of("master.example", "24")


@pytest.mark.parametrize(("address", "network", "expected"), [
    ("10.43.0.10", "10.43.0.0/16", True),
    ("10.44.0.10", "10.43.0.0/16", False),
    ("master.example", "10.43.0.0/16", False),
    ("fd00::1", "10.43.0.0/16", False),
])
def test_ip_in_cidr(address, network, expected):
    assert ip_in_cidr(address, network) is expected


def test_the_plugin_exports_every_filter():
    assert set(FilterModule().filters()) == {"cidr_valid", "cidr_overlaps", "cidr_of", "ip_in_cidr"}
