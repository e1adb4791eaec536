# Copyright: micado contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""IP network filters that need only the Python standard library (no netaddr).

preflight uses them to check that the k3s cluster and service CIDRs are valid and overlap neither
each other nor a network the hosts are on.
"""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError


def _network(value, what="network"):
    try:
        return ipaddress.ip_network(str(value).strip(), strict=False)
    except ValueError as exc:
        raise AnsibleFilterError(f"{value!r} is not a valid {what}: {exc}") from exc


def cidr_valid(value):
    """True when `value` is an IPv4/IPv6 network in CIDR notation (host bits must be zero)."""
    try:
        ipaddress.ip_network(str(value).strip(), strict=True)
    except ValueError:
        return False
    return "/" in str(value)


def cidr_overlaps(first, second):
    """True when the two networks share an address; networks of different IP versions never do."""
    one, two = _network(first), _network(second)
    if one.version != two.version:
        return False
    return one.overlaps(two)


def cidr_of(address, netmask=None):
    """The network `address` is on, in CIDR notation: `address` is an "ip/prefix" interface,
    an ip together with `netmask` (a dotted mask or a prefix length), or a mapping with the keys
    address and netmask (an interface's ipv4 fact)."""
    if isinstance(address, dict):
        address, netmask = address.get("address"), address.get("netmask", netmask)
    text = str(address).strip()
    if netmask not in (None, ""):
        text = f"{text}/{netmask}"
    try:
        return str(ipaddress.ip_interface(text).network)
    except ValueError as exc:
        raise AnsibleFilterError(f"{text!r} is not an address with a netmask: {exc}") from exc


def ip_in_cidr(address, network):
    """True when the IP address `address` lies in `network`; False for a hostname."""
    try:
        ip = ipaddress.ip_address(str(address).strip())
    except ValueError:
        return False
    net = _network(network)
    return ip.version == net.version and ip in net


class FilterModule:
    """micado.core network filters."""

    def filters(self):
        return {
            "cidr_valid": cidr_valid,
            "cidr_overlaps": cidr_overlaps,
            "cidr_of": cidr_of,
            "ip_in_cidr": ip_in_cidr,
        }
