"""Bearer tokens, HMAC signatures and where the receivers' secrets come from."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.api.tokens import TokenRoles
from app.sources.credentials import (
    SECRETS_ENV,
    SECRETS_FILE_ENV,
    SourceSecretError,
    SourceSecrets,
    ensure_local_secrets,
    load_source_secrets,
)
from app.sources.signatures import (
    bearer_token,
    grafana_signature_valid,
    pagerduty_signature_valid,
    token_matches,
)
from app.sources.worker import _own_secrets

OLD, NEW = "old-signing-secret-0000000000", "new-signing-secret-1111111111"


def sign(secret: str, body: bytes) -> str:
    """The oracle: the HMAC as the senders' documentation defines it."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@given(st.binary(max_size=300), st.sampled_from([OLD, NEW]))
def test_pagerduty_accepts_any_listed_secret_during_rotation(body: bytes, secret: str) -> None:
    assert pagerduty_signature_valid(f"v1={sign(secret, body)}", body, [OLD, NEW])
    both = f"v1={sign(OLD, body)}, v1={sign(NEW, body)}"
    assert pagerduty_signature_valid(both, body, [NEW])
    assert pagerduty_signature_valid(f"v1={'0' * 64},v1={sign(secret, body)}", body, [secret])


@given(st.binary(min_size=1, max_size=300), st.integers(0, 10_000))
def test_pagerduty_refuses_a_changed_body_and_bad_or_missing_headers(body: bytes,
                                                                     flip: int) -> None:
    good = sign(OLD, body)
    changed = bytearray(body)
    changed[flip % len(body)] ^= 0x01
    assert not pagerduty_signature_valid(f"v1={good}", bytes(changed), [OLD])
    assert not pagerduty_signature_valid(f"v1={sign('another-secret-222222', body)}", body,
                                         [OLD, NEW])
    for header in (None, "", good, f"v0={good}", "v1=", "v1=zz", "v1=é"):
        assert not pagerduty_signature_valid(header, body, [OLD])
    assert not pagerduty_signature_valid(f"v1={good}", body, [])


def test_grafana_signs_the_body_or_the_timestamp_and_body() -> None:
    body, secret = b'{"version":"1"}', "grafana-hmac-secret-000"
    assert grafana_signature_valid(sign(secret, body), None, body, [secret])
    assert grafana_signature_valid(sign(secret, b"1765000000:" + body), "1765000000", body,
                                   [secret])
    assert not grafana_signature_valid(sign(secret, body), "1765000000", body, [secret])
    assert not grafana_signature_valid(sign(secret, b"1765000001:" + body), "1765000000", body,
                                       [secret])
    assert not grafana_signature_valid(None, None, body, [secret])
    assert not grafana_signature_valid(sign(secret, body), None, body, [])


def test_bearer_tokens() -> None:
    assert bearer_token("Bearer abc") == "abc" and bearer_token("bearer  abc ") == "abc"
    for header in (None, "", "Basic abc", "Bearer", "Bearer é"):
        assert bearer_token(header) is None
    assert token_matches("a" * 20, ["b" * 20, "a" * 20]) and not token_matches("a", ["b"])


# ------------------------------------------------------------------- the secrets

def test_secrets_from_the_variable_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yml"
    path.write_text(f"pagerduty: [{OLD}, {NEW}]\ngrafana: grafana-hmac-secret-000\n")
    path.chmod(0o600)
    environ = {SECRETS_FILE_ENV: str(path),
               SECRETS_ENV: json.dumps({"alertmanager": "am-token-000000000000"})}
    secrets = load_source_secrets(environ)
    assert secrets == SourceSecrets(alertmanager=("am-token-000000000000",),
                                    grafana=("grafana-hmac-secret-000",), pagerduty=(OLD, NEW))
    assert OLD not in repr(secrets) and OLD not in str(secrets)
    assert "pagerduty=2" in repr(secrets)


@pytest.mark.parametrize(("environ", "message"), [
    ({SECRETS_ENV: "{not json"}, f"{SECRETS_ENV}: not valid JSON"),
    ({SECRETS_ENV: '["x"]'}, "expected a mapping"),
    ({SECRETS_ENV: '{"alertmanger": "am-token-000000000000"}'}, "unknown key(s) alertmanger"),
    ({SECRETS_ENV: '{"alertmanager": "short"}'}, "alertmanager: must be a string of at least"),
    ({SECRETS_ENV: '{"pagerduty": []}'}, "pagerduty: an empty list"),
    ({SECRETS_FILE_ENV: "/nonexistent/secrets.yml"}, "cannot read"),
])
def test_a_bad_secret_source_is_one_line_without_the_value(environ: dict[str, str],
                                                           message: str) -> None:
    with pytest.raises(SourceSecretError) as caught:
        load_source_secrets(environ)
    assert message in str(caught.value) and "short\"" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_key_in_both_places_and_an_api_token_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.yml"
    path.write_text("alertmanager: am-token-000000000000\n")
    with pytest.raises(SourceSecretError, match="give it in one place"):
        load_source_secrets({SECRETS_FILE_ENV: str(path),
                             SECRETS_ENV: '{"alertmanager": "am-token-111111111111"}'})
    secrets = SourceSecrets(alertmanager=("shared-token-0000000000",))
    with pytest.raises(SourceSecretError, match="also an API token"):
        _own_secrets(secrets, TokenRoles.of({"shared-token-0000000000": "agent_oncall"}))
    _own_secrets(secrets, TokenRoles.of({"other-token-00000000000": "agent_oncall"}))


def test_a_local_run_gets_a_private_token_that_stays(tmp_path: Path) -> None:
    path = tmp_path / "data" / "source-secrets.yml"
    first = load_source_secrets({}, path)
    assert len(first.alertmanager) == 1 and len(first.alertmanager[0]) >= 40
    assert not first.pagerduty_enabled and first.alerts_enabled
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ensure_local_secrets(path)
    assert load_source_secrets({}, path) == first  # never overwritten
    assert load_source_secrets({}, None) == SourceSecrets()  # nothing given: receivers off
