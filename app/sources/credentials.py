"""The receivers' secrets: a bearer token for Alertmanager, HMAC secrets for Grafana
and PagerDuty. Never in the repository, never in a log line or an answer.

They come from ``INTEL_SOURCE_SECRETS`` (a JSON object) and/or
``INTEL_SOURCE_SECRETS_FILE`` (the same as YAML)::

    alertmanager: <bearer token Alertmanager sends>      # or a list, while rotating
    grafana: <HMAC secret of the Grafana contact point>  # optional: the token is enough
    pagerduty: [<signing secret>, <the next one>]        # a list while rotating

A receiver whose secret is not given answers 404: an unconfigured receiver is
no open door. Local runs (neither variable set) keep their secrets in a file
under the data dir, created with a fresh Alertmanager token
(:func:`ensure_local_secrets`), so ``make run`` can print a receiver to paste.
"""

from __future__ import annotations

import logging
import os
import secrets as random_secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from app.errors import UserError

__all__ = ["MIN_SECRET_LENGTH", "SECRETS_ENV", "SECRETS_FILE_ENV", "SourceSecretError",
           "SourceSecrets", "ensure_local_secrets", "load_source_secrets", "parse_secrets"]

log = logging.getLogger(__name__)

SECRETS_ENV = "INTEL_SOURCE_SECRETS"
SECRETS_FILE_ENV = "INTEL_SOURCE_SECRETS_FILE"
MIN_SECRET_LENGTH = 16
"""Shorter secrets are guessable; they are refused at start-up."""
KEYS = ("alertmanager", "grafana", "pagerduty")


class SourceSecretError(UserError):
    """A secrets source that cannot be used; names the source and key, never a value."""


@dataclass(frozen=True)
class SourceSecrets:
    """The secrets of each receiver; an empty tuple means the receiver is off."""

    alertmanager: tuple[str, ...] = ()
    grafana: tuple[str, ...] = ()
    pagerduty: tuple[str, ...] = ()

    def __repr__(self) -> str:  # a log line or a traceback never shows one
        counts = ", ".join(f"{key}={len(getattr(self, key))}" for key in KEYS)
        return f"SourceSecrets({counts})"

    __str__ = __repr__

    @property
    def alerts_enabled(self) -> bool:
        """Alertmanager and Grafana share a receiver: a token or a Grafana secret opens it."""
        return bool(self.alertmanager or self.grafana)

    @property
    def pagerduty_enabled(self) -> bool:
        return bool(self.pagerduty)


def _values(value: Any, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise SourceSecretError(f"{where}: an empty list (leave the key out to turn it off)")
    for item in items:
        if not isinstance(item, str) or len(item) < MIN_SECRET_LENGTH:
            raise SourceSecretError(f"{where}: must be a string of at least "
                                    f"{MIN_SECRET_LENGTH} characters, or a list of them")
    return tuple(items)


def _from_document(document: Any, source: str) -> dict[str, tuple[str, ...]]:
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise SourceSecretError(f"{source}: expected a mapping with keys {', '.join(KEYS)}")
    unknown = sorted(str(key) for key in document if key not in KEYS)
    if unknown:
        raise SourceSecretError(f"{source}: unknown key(s) {', '.join(unknown)} (expected "
                                f"{', '.join(KEYS)})")
    return {key: _values(value, f"{source}: {key}") for key, value in document.items()}


def parse_secrets(text: str, source: str, *, json_only: bool = False) -> dict[str, tuple[str, ...]]:
    """One secrets document; parser messages are withheld (they may quote a secret)."""
    try:
        document = orjson.loads(text) if json_only else yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError):
        kind = "JSON" if json_only else "YAML"
        raise SourceSecretError(f"{source}: not valid {kind}") from None
    return _from_document(document, source)


def _read_file(path: Path) -> dict[str, tuple[str, ...]]:
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except OSError as exc:
        raise SourceSecretError(f"{SECRETS_FILE_ENV}={path}: cannot read: {exc.strerror}"
                                ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s is readable by other users; chmod 600 it", path)
    return parse_secrets(text, str(path))


def load_source_secrets(environ: Mapping[str, str] = os.environ,
                        fallback_file: Path | None = None) -> SourceSecrets:
    """Secrets from ``INTEL_SOURCE_SECRETS_FILE`` and ``INTEL_SOURCE_SECRETS`` (a key may be
    given in one of them only); with neither set, from ``fallback_file`` (created by
    :func:`ensure_local_secrets`) when one is given."""
    file_name = environ.get(SECRETS_FILE_ENV, "").strip()
    inline = environ.get(SECRETS_ENV, "").strip()
    found: dict[str, tuple[str, ...]] = {}
    if file_name:
        found.update(_read_file(Path(file_name)))
    if inline:
        for key, value in parse_secrets(inline, SECRETS_ENV, json_only=True).items():
            if key in found:
                raise SourceSecretError(f"{SECRETS_ENV}: {key} is also given in "
                                        f"{SECRETS_FILE_ENV}; give it in one place")
            found[key] = value
    if not file_name and not inline and fallback_file is not None:
        ensure_local_secrets(fallback_file)
        found = _read_file(fallback_file)
    return SourceSecrets(**found)


def ensure_local_secrets(path: Path) -> None:
    """Create ``path`` (mode 0600) with a fresh Alertmanager token when it does not exist.

    Never overwritten: a user adds ``pagerduty:`` or ``grafana:`` to it by hand.
    """
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ("# Secrets of the webhook receivers (created by incident-intel; keep private).\n"
            "# Add `pagerduty: <signing secret>` and `grafana: <HMAC secret>` to turn those on.\n"
            f'alertmanager: "{random_secrets.token_urlsafe(32)}"\n')
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
