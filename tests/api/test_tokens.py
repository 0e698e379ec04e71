"""Token sources: both document shapes, the environment, refusals, and local tokens."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
import yaml

from app.api import create_api
from app.api.tokens import (
    TOKENS_ENV,
    TOKENS_FILE_ENV,
    TokenError,
    TokenRoles,
    ensure_local_token,
    load_tokens,
    parse_tokens,
)
from tests.support.http_api import running

ONCALL = "a-long-oncall-token-123"
RELEASE = "a-long-release-token-456"


def test_mapping_of_plain_tokens(policy) -> None:
    roles = parse_tokens(f"{ONCALL}: agent_oncall\n{RELEASE}: agent_release\n", "t", policy.rbac)
    assert roles.role_for(ONCALL) == "agent_oncall"
    assert roles.role_for(RELEASE) == "agent_release"
    assert roles.role_for("a-long-unknown-token-789") is None
    assert len(roles) == 2


def test_list_with_plain_and_hashed_entries(policy) -> None:
    hashed = hashlib.sha256(RELEASE.encode()).hexdigest().upper()  # case does not matter
    text = f'[{{"token": "{ONCALL}", "role": "agent_cto"}}, ' \
           f'{{"token_sha256": "{hashed}", "role": "agent_release"}}]'
    roles = parse_tokens(text, "INTEL_API_TOKENS", policy.rbac)
    assert roles.role_for(ONCALL) == "agent_cto"
    assert roles.role_for(RELEASE) == "agent_release"


def test_nothing_kept_in_memory_or_printed_is_a_usable_token(policy) -> None:
    roles = parse_tokens(f"{ONCALL}: agent_oncall", "t", policy.rbac)
    assert ONCALL not in repr(roles) and ONCALL not in str(roles.by_digest)


@pytest.mark.parametrize(("text", "needle"), [
    (f"{ONCALL}: agent_nobody", "unknown role 'agent_nobody'"),
    ("short: agent_oncall", "at least 16"),
    ('[{"role": "agent_oncall"}]', "exactly one of token or token_sha256"),
    (f'[{{"token": "{ONCALL}", "token_sha256": "{"a" * 64}", "role": "agent_oncall"}}]',
     "exactly one"),
    ('[{"token_sha256": "xyz", "role": "agent_oncall"}]', "64 hexadecimal"),
    (f'[{{"token": "{ONCALL}", "role": "agent_oncall", "note": 1}}]', "unknown key"),
    (f'["{ONCALL}"]', "expected a mapping"),
    ("just a string", "expected a mapping"),
    (f"[{ONCALL}: agent_oncall", "not valid YAML"),
    (f'[{{"token": "{ONCALL}", "role": "agent_oncall"}}, '
     f'{{"token": "{ONCALL}", "role": "agent_cto"}}]', "already mapped"),
])
def test_bad_documents_stop_with_one_line_without_the_token(policy, text, needle) -> None:
    with pytest.raises(TokenError) as info:
        parse_tokens(text, "tokens.yml", policy.rbac)
    message = str(info.value)
    assert needle in message and message.startswith("tokens.yml")
    assert ONCALL not in message and "\n" not in message


def test_file_and_variable_are_merged(tmp_path: Path, policy) -> None:
    path = tmp_path / "tokens.yml"
    path.write_text(f"{ONCALL}: agent_oncall\n")
    environ = {TOKENS_FILE_ENV: str(path), TOKENS_ENV: f'{{"{RELEASE}": "agent_release"}}'}
    roles = load_tokens(environ, policy.rbac)
    assert (roles.role_for(ONCALL), roles.role_for(RELEASE)) == ("agent_oncall", "agent_release")
    clash = {TOKENS_FILE_ENV: str(path), TOKENS_ENV: f"{ONCALL}: agent_cto"}
    with pytest.raises(TokenError, match="already mapped"):
        load_tokens(clash, policy.rbac)


def test_missing_file_is_a_one_line_error(tmp_path: Path, policy) -> None:
    with pytest.raises(TokenError, match="cannot read"):
        load_tokens({TOKENS_FILE_ENV: str(tmp_path / "nope.yml")}, policy.rbac)


def test_no_source_means_no_token_is_accepted(policy) -> None:
    assert len(load_tokens({}, policy.rbac)) == 0


def test_local_token_file_is_private_and_stable(tmp_path: Path, policy) -> None:
    path = tmp_path / "state" / "api-tokens.yml"
    token = ensure_local_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_local_token(path) == token  # never overwritten
    document = yaml.safe_load(path.read_text())
    assert sorted(document.values()) == ["agent_oncall", "agent_release"]
    roles = load_tokens({}, policy.rbac, fallback_file=path)
    assert roles.role_for(token) == "agent_oncall"
    other = next(t for t, r in document.items() if r == "agent_release")
    assert roles.role_for(other) == "agent_release" and other != token


def test_fallback_file_is_created_only_when_no_variable_is_set(tmp_path: Path, policy) -> None:
    path = tmp_path / "api-tokens.yml"
    load_tokens({TOKENS_ENV: f"{ONCALL}: agent_oncall"}, policy.rbac, fallback_file=path)
    assert not path.exists()
    roles = load_tokens({}, policy.rbac, fallback_file=path)
    assert path.exists() and len(roles) == 2


def test_local_file_without_an_oncall_token_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "api-tokens.yml"
    path.write_text(f"{RELEASE}: agent_release\n")
    with pytest.raises(TokenError, match="agent_oncall"):
        ensure_local_token(path)


def test_a_hashed_token_authenticates_over_http(view, policy) -> None:
    hashed = hashlib.sha256(ONCALL.encode()).hexdigest()
    roles = parse_tokens(f'[{{"token_sha256": "{hashed}", "role": "agent_viewer"}}]', "t",
                         policy.rbac)
    with running(create_api(view, policy, roles)) as client:
        ok = client.request("POST", "/v1/tools/incident_intelligence",
                            json={"action": "recurrence"}, token=ONCALL)
        assert ok.status == 200
        wrong = client.request("POST", "/v1/tools/incident_intelligence",
                               json={"action": "recurrence"}, token=hashed)
        assert wrong.status == 401  # the digest itself is not a credential


def test_token_roles_of_plain_pairs() -> None:
    assert TokenRoles.of({ONCALL: "agent_oncall"}).role_for(ONCALL) == "agent_oncall"
