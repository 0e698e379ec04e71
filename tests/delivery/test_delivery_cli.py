"""`incident-intel followups deliver`: bad arguments give one line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main


@pytest.mark.parametrize(("args", "message"), [
    ([], "exactly one of --webhook URL or --jsonl FILE"),
    (["--webhook", "http://127.0.0.1:9/h", "--jsonl", "x.jsonl"], "exactly one of"),
    (["--webhook", "ftp://127.0.0.1/h"], "not an http(s) URL"),
    (["--webhook", "http:///nohost"], "not an http(s) URL"),
    (["--jsonl", "x.jsonl", "--max-attempts", "0"], "max attempts must be at least 1"),
    (["--jsonl", "x.jsonl", "--timeout", "0"], "timeout must be positive"),
    (["--jsonl", "x.jsonl", "--backoff", "5", "--backoff-max", "1"], "backoff"),
    (["--jsonl", "x.jsonl", "--max-attempts", "many"], "'many' is not a valid integer"),
    (["--jsonl", "x.jsonl", "--bogus"], "No such option: --bogus"),
    (["--jsonl", "x.jsonl", "--bootstrap-servers", " "], "no broker"),
    (["--jsonl", "missing-dir/x.jsonl", "--bootstrap-servers", "127.0.0.1:9"],
     "does not exist"),
])
def test_bad_arguments_give_one_line_and_exit_2(args: list[str], message: str,
                                                tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("INTEL_BOOTSTRAP_SERVERS", raising=False)
    result = CliRunner().invoke(main, ["followups", "deliver", *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output


def test_an_unknown_subcommand_is_one_line_too() -> None:
    result = CliRunner().invoke(main, ["followups", "deliverr"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["incident-intel: followups: No such command "
                                                  "'deliverr'."]
