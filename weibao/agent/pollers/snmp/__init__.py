"""SNMP poller: profiles of numeric OIDs turned into the metric vocabulary (v1, v2c, v3)."""

from weibao.agent.pollers.snmp.poller import SnmpPoller
from weibao.agent.pollers.snmp.profiles import (
    Profile,
    check_profiles,
    default_profile_dir,
    load_profile,
    load_profiles,
)

__all__ = ["Profile", "SnmpPoller", "check_profiles", "default_profile_dir", "load_profile", "load_profiles"]
