"""`incident-intel topics dump`: one event a line for `tool`, and one-line errors."""

from __future__ import annotations

from click.testing import CliRunner

from app.broker import free_port
from app.cli import main
from app.cli.topics import _line


def test_values_become_one_json_a_line_and_non_json_stays_one_bad_line() -> None:
    assert _line(b'{\n  "a": 1,\n  "b": [1, 2]\n}') == b'{"a":1,"b":[1,2]}'
    assert _line(b"{not\njson\r") == b"{not json "


def test_without_a_broker_it_says_how_to_name_one(monkeypatch) -> None:
    monkeypatch.delenv("INTEL_BOOTSTRAP_SERVERS", raising=False)
    result = CliRunner().invoke(main, ["topics", "dump"])
    assert result.exit_code == 2
    assert "--bootstrap HOST:PORT" in result.output and "Traceback" not in result.output


def test_an_unreachable_broker_is_one_line() -> None:
    result = CliRunner().invoke(main, ["topics", "dump", "--bootstrap",
                                       f"127.0.0.1:{free_port()}", "--timeout", "2"])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "cannot read the topics" in result.output
