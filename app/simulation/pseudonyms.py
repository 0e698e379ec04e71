"""Stable pseudonyms for identifying details of real incidents.

Within one :class:`Pseudonymizer`, the same value always becomes the same token
(``PERSON-1``, ``USER-2``, ``EMAIL-1``, ``IP-3``, ``HOST-1``, ``SESSION-4``,
``INCIDENT-1``, …), numbered in order of first sight; different values get
different tokens. Values are found two ways:

- by field: label and field names that hold a person, user, session, e-mail,
  address or host (``owner``, ``user_id``, ``session``, ``email``, ``ip``,
  ``hostname``, …) and ids (``incident_id``, ``event_id``, ``alert_id``,
  ``test_id``); such a value is replaced wherever it appears, free text
  included;
- by shape in any text: e-mail addresses, IPv4 and IPv6 addresses, host names
  under common suffixes (``.internal``, ``.com``, …), ``user-…``/``sess-…``
  style ids containing a digit, and ``@handles``.

Limits: a person's name that appears only in free text (never in a field
such as ``owner``) cannot be recognised by shape and stays as written.
"""

from __future__ import annotations

import re
from typing import Any

KIND_PREFIX: dict[str, str] = {
    "person": "PERSON",
    "user": "USER",
    "session": "SESSION",
    "email": "EMAIL",
    "ip": "IP",
    "host": "HOST",
    "incident": "INCIDENT",
    "event": "EVENT",
    "alert": "ALERT",
    "test": "TEST",
}

FIELD_KINDS: dict[str, str] = {}
for _kind, _names in {
    "person": ("owner", "assignee", "reporter", "commander", "incident_commander", "oncall",
               "on_call", "responder", "author", "created_by", "name", "full_name",
               "person", "engineer", "team_lead"),
    "user": ("user", "user_id", "userid", "username", "user_name", "account", "account_id",
             "customer", "customer_id", "actor", "actor_id"),
    "session": ("session", "session_id", "sessionid", "conversation", "conversation_id"),
    "email": ("email", "e_mail", "mail", "contact", "email_address"),
    "ip": ("ip", "ip_address", "client_ip", "source_ip", "src_ip", "dst_ip", "remote_addr",
           "remote_ip", "address"),
    "host": ("host", "hostname", "instance", "node", "pod", "server", "fqdn", "machine"),
    "incident": ("incident_id",),
    "event": ("event_id",),
    "alert": ("alert_id",),
    "test": ("test_id",),
}.items():
    for _name in _names:
        FIELD_KINDS[_name] = _kind

_HOST_SUFFIXES = (
    "internal|local|lan|corp|intra|svc|cluster|com|net|org|io|ai|dev|app|cloud|co|eu|us|de"
)
_SHAPES: tuple[tuple[str, str], ...] = (
    ("email", r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}"),
    ("ip", r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)"
           r"(?![\w.]*\d)"),
    ("ip", r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])"),
    ("ip", r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,5})?"
           r"(?![\w:])"),
    ("host", r"(?<![\w.@-])(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
             rf"(?:{_HOST_SUFFIXES})(?![\w-]|\.\w)"),
    ("user", r"(?<![\w-])(?:user|usr|uid|acct)[-_:](?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{3,}"
             r"(?![\w-])"),
    ("session", r"(?<![\w-])(?:sess|session|sid|conv)[-_:](?=[A-Za-z0-9_-]*\d)"
                r"[A-Za-z0-9_-]{3,}(?![\w-])"),
    ("person", r"(?<![\w@])@[A-Za-z][A-Za-z0-9_.-]*[A-Za-z0-9]"),
)


def field_kind(name: str) -> str | None:
    """The kind of identifier a field or label of this name holds, if any."""
    return FIELD_KINDS.get(re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_"))


class Pseudonymizer:
    """One exercise's consistent mapping from identifying values to tokens."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], str] = {}
        self._counts: dict[str, int] = {}
        self._known: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None

    # ----------------------------------------------------------------- mapping

    @staticmethod
    def _canonical(value: str, kind: str) -> str:
        return value.lower() if kind in ("email", "host") else value

    def token(self, value: str, kind: str) -> str:
        """The token of ``value``; the first kind a value is seen as sticks."""
        kind = self._known.get(value, kind)
        ident = (kind, self._canonical(value, kind))
        if ident not in self._tokens:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            self._tokens[ident] = f"{KIND_PREFIX[kind]}-{self._counts[kind]}"
        return self._tokens[ident]

    def register(self, value: str, kind: str) -> str:
        """Remember ``value`` so it is replaced wherever it appears, free text included."""
        value = value.strip()
        if not value:
            return value
        if value not in self._known:
            self._known[value] = kind
            self._pattern = None
        return self.token(value, self._known[value])

    @property
    def mapping_size(self) -> int:
        return len(self._tokens)

    # -------------------------------------------------------------------- text

    def _compiled(self) -> re.Pattern[str]:
        if self._pattern is None:
            known = sorted(self._known, key=lambda v: (-len(v), v))
            parts = [rf"(?P<k{i}>(?<!\w){re.escape(v)}(?!\w))" for i, v in enumerate(known)]
            parts += [f"(?P<s{i}>{rx})" for i, (_, rx) in enumerate(_SHAPES)]
            self._pattern = re.compile("|".join(parts))
            self._order = known
        return self._pattern

    def text(self, value: str) -> str:
        """``value`` with every known value and identifier-shaped string replaced."""
        pattern = self._compiled()
        order = self._order

        def swap(match: re.Match[str]) -> str:
            group = match.lastgroup or ""
            found = match.group(0)
            if group.startswith("k"):
                return self.token(found, self._known[order[int(group[1:])]])
            return self.token(found, _SHAPES[int(group[1:])][0])

        return pattern.sub(swap, value)

    # ------------------------------------------------------------- documents

    def collect(self, obj: Any) -> None:
        """Register the values of identifying fields anywhere in a JSON-like value."""
        if isinstance(obj, dict):
            for key, value in obj.items():
                kind = field_kind(str(key))
                if kind and isinstance(value, str):
                    self.register(value, kind)
                else:
                    self.collect(value)
        elif isinstance(obj, list):
            for item in obj:
                self.collect(item)

    def scrub(self, obj: Any) -> Any:
        """A copy of a JSON-like value with every string passed through :meth:`text`.

        Mapping keys are kept (they are field names) except label keys that
        look like identifiers themselves.
        """
        if isinstance(obj, dict):
            return {self.text(k) if not field_kind(str(k)) else k: self.scrub(v)
                    for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.scrub(item) for item in obj]
        if isinstance(obj, str):
            return self.text(obj)
        return obj

    def document(self, obj: Any) -> Any:
        """Collect, then scrub: the usual way to pseudonymise a record."""
        self.collect(obj)
        return self.scrub(obj)
