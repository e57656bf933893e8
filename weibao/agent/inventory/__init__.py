"""The site inventory: devices, groups, defaults and named credentials, loaded strictly."""

from weibao.agent.inventory.loader import load_inventory
from weibao.agent.inventory.model import (
    Asset,
    Category,
    Device,
    IcmpSettings,
    Inventory,
    Kind,
    Schedule,
    SnmpCredential,
    SnmpSettings,
    SshCredential,
    SshSettings,
)

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
