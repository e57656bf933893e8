"""The inventory's shared vocabulary: device kinds, contract categories, and what a device name may be.

The agent's inventory loader and the collector's registration API apply the same rules, so a device the
collector accepts is one the agent could have loaded.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
# letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128: no control character,
# no space, nothing a terminal or a file name could misread
DEVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
DEVICE_NAME_RULE = "device names use letters, digits, '.', '_' and '-' (at most 128)"


class Kind(StrEnum):
    SWITCH = "switch"
    ROUTER = "router"
    FIREWALL = "firewall"
    SERVER = "server"
    UPS = "ups"
    STORAGE = "storage"
    WIRELESS = "wireless"
    OTHER = "other"


class Category(StrEnum):
    """The rows of the contract's fault table a device's outage counts against."""

    BACKBONE = "backbone"
    PROVINCIAL = "provincial"
    BUSINESS = "business"
    REALTIME = "realtime"
    MIS = "mis"
    PROCESSING = "processing"


def check_device_name(value: str) -> str:
    if not DEVICE_NAME.match(value):
        raise ValueError(DEVICE_NAME_RULE)
    return value


def check_address(value: str) -> str:
    """An IPv4/IPv6 address (normalised) or a host name; ValueError otherwise."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if _HOSTNAME.match(value) and not re.fullmatch(r"[0-9.]+", value):
        return value
    raise ValueError(f"bad address {value!r}: not an IPv4/IPv6 address or host name")
