"""Who may do what in the console: one table from role to permissions, checked in one place (``web.require``).

Ticket actions are not listed here: ``weibao.collector.tickets.actions.ACTIONS`` says which roles take each
one. An admin takes the actions of an engineer (``acting_roles``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from weibao.collector.access.accounts import UserRole


class Perm(StrEnum):
    READ = "read"                # overview, tickets, devices, reports, the contract
    MAINTENANCE = "maintenance"  # list, plan and cancel maintenance windows
    USERS = "users"              # manage accounts
    AUDIT = "audit"              # read the audit log


ROLE_PERMS: Mapping[UserRole, frozenset[Perm]] = {
    UserRole.ADMIN: frozenset(Perm),
    UserRole.ENGINEER: frozenset({Perm.READ, Perm.MAINTENANCE}),
    UserRole.CLIENT: frozenset({Perm.READ}),
}

_ACTING: Mapping[UserRole, tuple[str, ...]] = {
    UserRole.ADMIN: ("admin", "engineer"),
    UserRole.ENGINEER: ("engineer",),
    UserRole.CLIENT: ("client",),
}


def can(role: UserRole, perm: Perm) -> bool:
    return perm in ROLE_PERMS[role]


def acting_roles(role: UserRole) -> tuple[str, ...]:
    """The roles of the actions table this console role acts as, in order of preference."""
    return _ACTING[role]
