"""Kind derivation and incident signatures (docs/architecture.md §3)."""

from __future__ import annotations

import hashlib
import re

from app.policy import KindDerivation

_SPACE = re.compile(r"\s+")
_VOLATILE = re.compile(
    r"\b(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|0x[0-9a-f]+|\d+)\b"
)


def normalise_title(title: str) -> str:
    """Lower-case, numbers and ids folded to ``#``, runs of white space to one space.

    Two alerts that differ only in a count, a pod ordinal or a request id get
    the same signature.
    """
    return _SPACE.sub(" ", _VOLATILE.sub("#", title.lower())).strip()


def derive_kind(title: str, labels: dict[str, str], rules: KindDerivation) -> str:
    """The first keyword rule found in the title or a label value; else the default."""
    haystack = " ".join([title, *(labels[k] for k in sorted(labels))]).lower()
    for rule in rules.rules:
        if any(keyword.lower() in haystack for keyword in rule.keywords):
            return rule.kind
    return rules.default


def compute_signature(service: str, kind: str, title: str) -> str:
    """SHA-256 hex of the normalised ``service|kind|title``."""
    text = "|".join([service.strip().lower(), kind.strip().lower(), normalise_title(title)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
