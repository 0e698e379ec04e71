"""INTEL_* settings: defaults, one-line errors naming the variable, no traceback from the CLI."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from app.cli import main
from app.errors import UserError
from app.policy import default_policy_dir, load_policy
from app.stream.settings import load_settings


def test_defaults_match_the_documented_ones() -> None:
    settings = load_settings({})
    assert settings.embedded
    assert settings.app_id == "incident-intel"
    assert settings.partitions == 4
    assert settings.broker_loss_exit_seconds == 120.0
    assert settings.digest_check_seconds == 30.0
    assert (settings.web_host, settings.web_port) == ("127.0.0.1", 6066)
    assert (settings.policy_dir / "incident_intelligence.yml").is_file()
    assert settings.reports_dir == Path("ops/reports/incidents/weekly")
    assert settings.security_protocol == "PLAINTEXT"
    assert settings.kafka_client_options() == {"security_protocol": "PLAINTEXT"}


def test_values_are_read_and_empty_means_unset() -> None:
    settings = load_settings(
        {
            "INTEL_BOOTSTRAP_SERVERS": " kafka:9092 , kafka2:9092 ",
            "INTEL_PARTITIONS": "8",
            "INTEL_BROKER_LOSS_EXIT_SECONDS": "45",
            "INTEL_WEB_PORT": "",
            "INTEL_TOPIC_PREFIX": "dev.",
            "INTEL_DIGEST_CHECK_SECONDS": "2",
        }
    )
    assert settings.bootstrap_servers == "kafka:9092,kafka2:9092"
    assert not settings.embedded
    assert settings.partitions == 8
    assert settings.broker_loss_exit_seconds == 45.0
    assert settings.web_port == 6066
    assert settings.topic("intel.dlq") == "dev.intel.dlq"
    assert settings.digest_check_seconds == 2.0


def test_sasl_settings_become_client_options() -> None:
    settings = load_settings(
        {
            "INTEL_BOOTSTRAP_SERVERS": "kafka:9094",
            "INTEL_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "INTEL_SASL_MECHANISM": "SCRAM-SHA-512",
            "INTEL_SASL_USERNAME": "intel",
            "INTEL_SASL_PASSWORD": "s3cret",
        }
    )
    assert settings.kafka_client_options() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "intel",
        "sasl_plain_password": "s3cret",
    }
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings.describe())


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"INTEL_PARTITIONS": "zero"}, "INTEL_PARTITIONS='zero': must be a valid integer"),
        ({"INTEL_PARTITIONS": "0"}, "INTEL_PARTITIONS='0': must be greater than or equal to 1"),
        ({"INTEL_STUCK_PARTITION_SECONDS": "1"},
         "INTEL_STUCK_PARTITION_SECONDS='1': must be greater than or equal to 5"),
        ({"INTEL_BOOTSTRAP_SERVERS": "kafka"}, "INTEL_BOOTSTRAP_SERVERS='kafka': 'kafka' is not"),
        ({"INTEL_WEB_PORT": "70000"}, "INTEL_WEB_PORT='70000': must be less than or equal"),
        ({"INTEL_APP_ID": "a b"}, "INTEL_APP_ID='a b': only letters"),
        ({"INTEL_SECURITY_PROTOCOL": "TLS"}, "INTEL_SECURITY_PROTOCOL='TLS': must be 'PLAINTEXT'"),
        (
            {"INTEL_SECURITY_PROTOCOL": "SASL_SSL"},
            "SASL_SSL needs INTEL_SASL_USERNAME and INTEL_SASL_PASSWORD",
        ),
        ({"INTEL_SASL_PASSWORD": "x"}, "INTEL_SASL_* is set but INTEL_SECURITY_PROTOCOL is"),
        (
            {"INTEL_SECURITY_PROTOCOL": "SSL", "INTEL_SSL_CAFILE": "/no/such/ca.pem"},
            "INTEL_SSL_CAFILE='/no/such/ca.pem': no such file",
        ),
    ],
)
def test_bad_values_name_the_variable_and_the_reason(env: dict[str, str], expected: str) -> None:
    with pytest.raises(UserError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert "unset it" in message or " use " in message or "needs INTEL_" in message  # the fix


def test_a_bad_policy_dir_names_value_variable_and_fix(tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        load_settings({"INTEL_POLICY_DIR": str(tmp_path / "nope")})
    message = str(caught.value)
    assert message.startswith(f"INTEL_POLICY_DIR={str(tmp_path / 'nope')!r}: not a directory")
    assert "unset it" in message


def test_policy_dir_defaults_like_every_command_from_any_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """From a directory without ``policy/`` the worker uses the bundled policy, as ``tool``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INTEL_POLICY_DIR", raising=False)
    settings = load_settings({})
    assert settings.policy_dir == default_policy_dir()
    assert load_policy(settings.policy_dir).intel.kinds
    (tmp_path / "policy").mkdir()
    assert load_settings({}).policy_dir == Path("policy")  # a local policy/ wins


def test_password_is_never_echoed() -> None:
    with pytest.raises(UserError) as caught:
        load_settings({"INTEL_SASL_PASSWORD": "hunter2-" + "x" * 30})
    assert "hunter2" not in str(caught.value)


def _run_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str]) -> Result:
    for name in list(os.environ):
        if name.startswith("INTEL_"):
            monkeypatch.delenv(name)
    env = {"INTEL_DATA_DIR": str(tmp_path / "data"), **env}
    return CliRunner().invoke(main, ["run"], env=env)


def test_cli_reports_a_bad_setting_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = _run_cli(monkeypatch, tmp_path, {"INTEL_PARTITIONS": "many"})
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "incident-intel: INTEL_PARTITIONS='many': must be a valid integer, "
        "unable to parse string as an integer; fix INTEL_PARTITIONS or unset it to use "
        "the default 4"
    ]


def test_cli_refuses_a_busy_web_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run_cli(monkeypatch, tmp_path, {"INTEL_WEB_PORT": str(port)})
    assert result.exit_code == 2
    assert f"INTEL_WEB_PORT={port}: cannot listen on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output


def test_cli_reports_an_unreachable_kafka(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import app.cli.broker_start as broker_start
    from app.broker import free_port

    monkeypatch.setattr(broker_start, "KAFKA_WAIT", 1.0)
    closed = free_port()
    result = _run_cli(
        monkeypatch,
        tmp_path,
        {"INTEL_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed}", "INTEL_WEB_PORT": str(free_port())},
    )
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"incident-intel: INTEL_BOOTSTRAP_SERVERS=127.0.0.1:{closed}: no Kafka")
    assert "Traceback" not in result.output
