"""Who may do what: the RBAC decision of ``policy/rbac.yml``, as pure functions.

An API operation is named by the actions of ``rbac.yml`` it performs: a
``correlate`` call with ``append_note: true`` performs ``correlate`` and
``append_note``. It is allowed when the caller's role holds every entitlement
those actions list. The decision fails closed: an action ``rbac.yml`` does not
list, or a role it does not define, grants nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.policy import RbacPolicy

__all__ = ["Decision", "decide", "operations_of"]

UNLISTED = "(unlisted action)"
"""Stands in for the entitlement of an action ``rbac.yml`` does not list: never held."""


@dataclass(frozen=True)
class Decision:
    """The outcome, with what is missing so a refusal can say what to ask for."""

    allowed: bool
    missing: tuple[str, ...]
    operations: tuple[str, ...]

    def reason(self, role: str | None) -> str:
        """One line for a 403 body, naming the missing entitlement(s)."""
        who = f"role {role!r}" if role else "this token"
        needs = ", ".join(self.missing)
        return f"{who} lacks {needs}, needed for {' + '.join(self.operations)}"


def operations_of(action: str, append_note: bool = False) -> tuple[str, ...]:
    """The ``rbac.yml`` actions one call performs."""
    return (action, "append_note") if append_note else (action,)


def needed(rbac: RbacPolicy, operations: Iterable[str]) -> list[str]:
    """Entitlements the operations need, in policy order, without repeats."""
    out: list[str] = []
    for operation in operations:
        for entitlement in rbac.actions.get(operation, [f"{UNLISTED} {operation}"]):
            if entitlement not in out:
                out.append(entitlement)
    return out


def decide(rbac: RbacPolicy, role: str | None, operations: Iterable[str]) -> Decision:
    """Allow when ``role`` holds every entitlement the operations need."""
    ops = tuple(operations)
    held = set(rbac.roles.get(role, [])) if role is not None else set()
    missing = tuple(e for e in needed(rbac, ops) if e not in held)
    return Decision(allowed=not missing, missing=missing, operations=ops)
