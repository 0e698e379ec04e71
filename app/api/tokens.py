"""Bearer tokens and the roles they stand for.

Tokens never live in the repository. They come from a file named by
``INTEL_API_TOKENS_FILE`` and/or from the ``INTEL_API_TOKENS`` variable; both
hold the same YAML (or JSON, a subset of YAML) document, in one of two shapes::

    # a mapping of plain tokens to roles
    3q2-long-random-token: agent_oncall

    # or a list, each entry with a plain token or its SHA-256 (hex) and a role
    - {token_sha256: 9f86d08…, role: agent_release}
    - {token: another-long-random-token, role: agent_cto}

Only SHA-256 digests are kept in memory, so a heap dump or a log line of this
object never shows a usable token. A bad document stops the program with one
line naming the source and the entry (never the token itself).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from app.errors import UserError
from app.policy import RbacPolicy

__all__ = [
    "LOCAL_TOKEN_ROLES",
    "MIN_TOKEN_LENGTH",
    "TOKENS_ENV",
    "TOKENS_FILE_ENV",
    "TokenError",
    "TokenRoles",
    "digest",
    "ensure_local_token",
    "local_tokens",
    "load_tokens",
    "parse_tokens",
]

log = logging.getLogger(__name__)

TOKENS_FILE_ENV = "INTEL_API_TOKENS_FILE"
TOKENS_ENV = "INTEL_API_TOKENS"
MIN_TOKEN_LENGTH = 16
"""Shorter tokens are guessable; they are refused at start-up."""
LOCAL_TOKEN_ROLES: tuple[str, ...] = ("agent_oncall", "agent_release")
"""Roles :func:`ensure_local_token` provisions; the first one's token is returned."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class TokenError(UserError):
    """A token source that cannot be used; the message names the source and entry."""


def digest(token: str) -> str:
    """The SHA-256 hex digest under which a token is looked up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenRoles:
    """Which role each known token (by digest) holds."""

    by_digest: Mapping[str, str] = field(default_factory=dict)

    def role_for(self, token: str) -> str | None:
        """The role of a presented token, or ``None`` when it is unknown."""
        return self.by_digest.get(digest(token))

    def merged(self, other: TokenRoles, source: str) -> TokenRoles:
        """Both sets of tokens; one token given two different roles is an error."""
        combined = dict(self.by_digest)
        for key, role in other.by_digest.items():
            if combined.get(key, role) != role:
                raise TokenError(f"{source}: a token is already mapped to role "
                                 f"{combined[key]!r}, not {role!r}")
            combined[key] = role
        return TokenRoles(combined)

    def __len__(self) -> int:
        return len(self.by_digest)

    def __repr__(self) -> str:  # never print digests either: they identify tokens
        return f"TokenRoles({len(self)} tokens)"

    @classmethod
    def of(cls, pairs: Mapping[str, str]) -> TokenRoles:
        """From plain ``{token: role}`` (tests and embedding code)."""
        return cls({digest(token): role for token, role in pairs.items()})


def _entry_digest(entry: Mapping[str, Any], where: str) -> str:
    plain, hashed = entry.get("token"), entry.get("token_sha256")
    if (plain is None) == (hashed is None):
        raise TokenError(f"{where}: give exactly one of token or token_sha256")
    if hashed is not None:
        if not isinstance(hashed, str) or not _SHA256.match(hashed.lower()):
            raise TokenError(f"{where}: token_sha256 must be 64 hexadecimal characters")
        return hashed.lower()
    return _checked_token(plain, where)


def _checked_token(token: Any, where: str) -> str:
    if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH:
        raise TokenError(f"{where}: token must be a string of at least "
                         f"{MIN_TOKEN_LENGTH} characters")
    return digest(token)


def _checked_role(role: Any, where: str, rbac: RbacPolicy | None) -> str:
    if not isinstance(role, str) or not role:
        raise TokenError(f"{where}: role must be a non-empty string")
    if rbac is not None and role not in rbac.roles:
        known = ", ".join(sorted(rbac.roles))
        raise TokenError(f"{where}: unknown role {role!r} (rbac.yml defines {known})")
    return role


def _pairs(document: Any, source: str, rbac: RbacPolicy | None) -> Iterable[tuple[str, str]]:
    if isinstance(document, Mapping):
        for index, (token, role) in enumerate(document.items(), start=1):
            where = f"{source}: entry {index}"
            yield _checked_token(token, where), _checked_role(role, where, rbac)
    elif isinstance(document, list):
        for index, entry in enumerate(document, start=1):
            where = f"{source}: entry {index}"
            if not isinstance(entry, Mapping):
                raise TokenError(f"{where}: expected a mapping with token and role")
            unknown = set(entry) - {"token", "token_sha256", "role"}
            if unknown:
                raise TokenError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
            yield _entry_digest(entry, where), _checked_role(entry.get("role"), where, rbac)
    elif document is not None:
        raise TokenError(f"{source}: expected a mapping of token to role, or a list")


def parse_tokens(text: str, source: str, rbac: RbacPolicy | None = None) -> TokenRoles:
    """Parse one token document; ``source`` names it in errors (a path or a variable)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        # The parser's message may quote the offending line, which may hold a token.
        raise TokenError(f"{source}: not valid YAML or JSON") from None
    out = TokenRoles()
    for key, role in _pairs(document, source, rbac):
        out = out.merged(TokenRoles({key: role}), source)
    return out


def _read_file(path: Path, rbac: RbacPolicy | None) -> TokenRoles:
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except OSError as exc:
        raise TokenError(f"{TOKENS_FILE_ENV}={path}: cannot read: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s is readable by other users; chmod 600 it", path)
    return parse_tokens(text, str(path), rbac)


def load_tokens(environ: Mapping[str, str] = os.environ, rbac: RbacPolicy | None = None,
                fallback_file: Path | None = None) -> TokenRoles:
    """Tokens from ``INTEL_API_TOKENS_FILE`` and ``INTEL_API_TOKENS`` (both may be set).

    When neither is set and ``fallback_file`` is given, that file is used,
    created first with fresh tokens by :func:`ensure_local_token` (local runs).
    With no tokens at all every ``/v1`` call is refused, which is safe.
    """
    out = TokenRoles()
    file_name = environ.get(TOKENS_FILE_ENV, "").strip()
    inline = environ.get(TOKENS_ENV, "").strip()
    if file_name:
        out = out.merged(_read_file(Path(file_name), rbac), file_name)
    if inline:
        out = out.merged(parse_tokens(inline, TOKENS_ENV, rbac), TOKENS_ENV)
    if not file_name and not inline and fallback_file is not None:
        ensure_local_token(fallback_file)
        out = _read_file(fallback_file, rbac)
    return out


def local_tokens(path: Path | str, roles: tuple[str, ...] = LOCAL_TOKEN_ROLES) -> dict[str, str]:
    """Role → plain token of the local token file, created as :func:`ensure_local_token` does.

    The run command prints one line per role, so a user can call the gate
    (``agent_release``) as well as the on-call tools (``agent_oncall``).
    """
    ensure_local_token(path, roles)
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    return {role: token for token, role in document.items()
            if isinstance(token, str) and isinstance(role, str)}


def ensure_local_token(path: Path | str, roles: tuple[str, ...] = LOCAL_TOKEN_ROLES) -> str:
    """The token of ``roles[0]`` in ``path``, creating the file (mode 0600) when missing.

    A local run needs a token to call its own API without anyone writing a
    secret into the repository; the run command prints the returned token.
    The file holds one fresh random token per role and is never overwritten.
    """
    target = Path(path)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# Local API tokens (created by incident-intel; keep private).\n"]
        # Quoted: a random token must never be read back as a number or a date.
        lines += [f'"{secrets.token_urlsafe(32)}": {role}\n' for role in roles]
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.writelines(lines)
    try:
        document = yaml.safe_load(target.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        raise TokenError(f"{target}: not a token file") from None
    if isinstance(document, Mapping):
        for token, role in document.items():
            if role == roles[0] and isinstance(token, str):
                return token
    raise TokenError(f"{target}: holds no plain token for role {roles[0]!r}")
