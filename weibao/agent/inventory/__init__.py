"""The site inventory: devices, groups, defaults and named credentials, loaded strictly."""

from weibao.agent.inventory.loader import load_inventory
from weibao.agent.inventory.model import (
    Asset,
    Device,
    IcmpSettings,
    Inventory,
    Schedule,
    SnmpCredential,
    SnmpSettings,
    SshCredential,
    SshSettings,
)
from weibao.core.inventory import Category, Kind

__all__ = [
    "Asset",
    "Category",
    "Device",
    "IcmpSettings",
    "Inventory",
    "Kind",
    "Schedule",
    "SnmpCredential",
    "SnmpSettings",
    "SshCredential",
    "SshSettings",
    "load_inventory",
]
