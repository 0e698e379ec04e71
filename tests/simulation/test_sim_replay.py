"""Replay of a real incident and the pseudonyms that strip its context."""

from __future__ import annotations

import json
from datetime import date

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from app.cli import main
from app.contracts import decode_event
from app.simulation.exercise import render_exercise
from app.simulation.models import AnswerKey
from app.simulation.pseudonyms import Pseudonymizer
from app.simulation.replay import load_events, replay_exercise
from tests.support.repository import SIMULATION_FIXTURES, SIMULATION_POLICY

HISTORY = SIMULATION_FIXTURES / "history.jsonl"
INCIDENT = "inc_20260218_1430_abc123"
ORIGINALS = [
    "Maria Jensen", "maria.jensen@example.com", "sess-77aa01", "user-5521",
    "checkout-7.prod.internal", "gw-2.prod.internal", "10.20.30.40",
    "payments-old.prod.internal", INCIDENT, "e-9001",
]

# ------------------------------------------------------------------ strategies

_alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8)
emails = st.builds(lambda a, b, c: f"{a}.{b}@{c}.com", _label, _label, _label)
ips = st.builds(lambda *p: ".".join(str(x) for x in p), *[st.integers(1, 254)] * 4)
hosts = st.builds(lambda a, n, b: f"{a}-{n}.{b}.internal", _label, st.integers(1, 99), _label)
user_ids = st.builds(lambda s, n: f"user-{s}{n}", _label, st.integers(10, 99999))
session_ids = st.builds(lambda s, n: f"sess-{s}{n}", st.text(alphabet=_alnum, min_size=3,
                                                             max_size=10), st.integers(1, 999))
names = st.builds(lambda a, b: f"{a.title()} {b.title()}",
                  st.sampled_from(["maria", "oluwaseun", "kenji", "agnieszka", "tomasz",
                                   "fatima", "lucia", "henrik", "priya", "joaquim"]),
                  st.sampled_from(["jensen", "okafor", "tanaka", "kowalska", "novak",
                                   "haddad", "moretti", "lindqvist", "raman", "silva"]))


def _record(email, ip, host, user, session, name, incident_suffix):
    return {
        "event_id": f"e-{incident_suffix}",
        "type": "incident.opened",
        "occurred_at": "2026-02-18T14:30:00Z",
        "incident": {
            "incident_id": f"inc_20260218_1430_{incident_suffix}",
            "service": "checkout",
            "severity": "P2",
            "status": "open",
            "title": f"{host} failing for {email} ({user}, {session}) from {ip}",
            "started_at": "2026-02-18T14:30:00Z",
            "root_cause": f"{name} restarted {host}; {ip} then {email} again",
            "labels": {"owner": name, "user_id": user, "session": session, "host": host,
                       "client_ip": ip, "contact": email},
        },
    }


@settings(max_examples=60, deadline=None)
@given(emails, ips, hosts, user_ids, session_ids, names,
       st.text(alphabet="0123456789abcdef", min_size=6, max_size=6))
def test_pseudonyms_are_stable_and_leave_no_original(email, ip, host, user, session, name,
                                                     suffix):
    originals = [email, ip, host, user, session, name, f"inc_20260218_1430_{suffix}"]
    records = [_record(email, ip, host, user, session, name, suffix),
               _record(email, ip, host, user, session, name, suffix)]
    names_ = Pseudonymizer()
    clean = [names_.document(r) for r in records]
    text = json.dumps(clean)
    for original in originals:
        assert original not in text
    # Same value, same token, wherever it appears (fields and free text alike).
    assert clean[0] == clean[1]
    labels = clean[0]["incident"]["labels"]
    title = clean[0]["incident"]["title"]
    for field in ("host", "contact", "user_id", "session", "client_ip"):
        assert labels[field] in title
    assert labels["owner"] in clean[0]["incident"]["root_cause"]
    # Different values get different tokens.
    tokens = [labels[f] for f in ("owner", "user_id", "session", "host", "client_ip", "contact")]
    assert len(set(tokens)) == len(tokens)
    # The pseudonymised record is still a valid contract record.
    decode_event(orjson.dumps(clean[0]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(emails, ips, hosts, user_ids, session_ids), min_size=1,
                max_size=8))
def test_text_tokens_depend_only_on_the_value(values):
    names_ = Pseudonymizer()
    first = [names_.text(v) for v in values]
    again = [names_.text(v) for v in reversed(values)]
    assert first == list(reversed(again))
    distinct = {v.lower() for v in values}
    assert len(set(first)) == len(distinct)
    for value, token in zip(values, first, strict=True):
        assert value not in token


def test_ordinary_text_is_left_alone():
    names_ = Pseudonymizer()
    text = ("5xx spike on /v1/chat at 14:30:00 after deploy v2026.02.18-2; p99 3.5s; "
            "user-facing errors; see app.policy")
    assert names_.text(text) == text


def test_replay_strips_context_and_withholds_answers(sim_policy):
    events = load_events(HISTORY)
    result = replay_exercise(events, INCIDENT, sim_policy, on=date(2026, 11, 23),
                             participants=["Ana"])
    sheet = render_exercise(result.sheet, sim_policy)
    key_json = result.key.model_dump_json()
    for original in ORIGINALS:
        assert original not in sheet, original
        assert original not in key_json, original
    assert "INCIDENT-1" in sheet and "PERSON-1" not in sheet.split("## Scenario")[0]
    # Root cause and postmortem: withheld from the sheet, kept (pseudonymised) in the key.
    assert "retired payments endpoint" not in sheet
    assert "retired payments endpoint" in result.key.expected.root_cause.sentence
    assert result.key.postmortem and "PERSON-1" in result.key.postmortem
    assert "canary" not in sheet.lower().split("## appendix")[1]
    # Severity: first page shown, final kept for the key.
    assert "paged as P2" in sheet
    assert result.key.expected.severity.level == "SEV-1"
    assert '"severity":"P1"' not in sheet
    br = result.key.expected.blast_radius
    assert br.users == 37 and br.services == ["checkout", "gateway"]
    assert br.duration_minutes == 50
    assert result.key.expected.root_cause.key == "bad_deploy"
    assert "test_checkout_upstream_reachable" not in sheet
    assert "TEST-1" in result.key.expected.regression_test.description


def test_replay_command(cli, tmp_path):
    out = tmp_path / "replay"
    result = cli.invoke(main, ["simulate", "replay", "--events", str(HISTORY), "--incident",
                               INCIDENT, "--out", str(out), "--date", "2026-11-23",
                               "--policy", str(SIMULATION_POLICY)])
    assert result.exit_code == 0, result.output
    sheet = (out / "exercise.md").read_text(encoding="utf-8")
    key = AnswerKey.model_validate_json((out / "answer_key.json").read_bytes())
    assert key.source == "replay" and key.red_herrings == []
    assert "## Appendix A: timeline" in sheet
    for original in ORIGINALS:
        assert original not in sheet


def test_replay_of_an_unknown_incident_lists_the_known_ones(cli, tmp_path):
    result = cli.invoke(main, ["simulate", "replay", "--events", str(HISTORY), "--incident",
                               "inc_missing", "--out", str(tmp_path), "--policy",
                               str(SIMULATION_POLICY)])
    assert result.exit_code == 2
    assert "inc_missing" in result.output and "inc_20260219_0900_def456" in result.output


def test_replay_of_a_bad_file_names_the_line(cli, tmp_path):
    bad = tmp_path / "events.jsonl"
    bad.write_text(HISTORY.read_text(encoding="utf-8") + "{not json}\n", encoding="utf-8")
    result = cli.invoke(main, ["simulate", "replay", "--events", str(bad), "--incident",
                               INCIDENT, "--out", str(tmp_path / "x"), "--policy",
                               str(SIMULATION_POLICY)])
    assert result.exit_code == 2
    assert f"{bad}:10: not JSON" in result.output
    assert "Traceback" not in result.output


def test_unknown_root_cause_is_graded_on_the_summary(sim_policy):
    from app.simulation.answers import parse_answers
    from app.simulation.grading import grade

    lines = [json.loads(line) for line in HISTORY.read_text(encoding="utf-8").splitlines()]
    for line in lines:
        if line.get("incident", {}).get("root_cause"):
            line["incident"]["root_cause"] = "A forgotten cron job truncated the ledger table"
    events = [decode_event(orjson.dumps(line)) for line in lines
              if line["type"] != "postmortem.published"]
    key = replay_exercise(events, INCIDENT, sim_policy, on=date(2026, 11, 23),
                          participants=[]).key
    assert key.expected.root_cause.key == "other"
    assert "other" in key.root_cause_keys
    assert grade(key, parse_answers({"root_cause": "other"})).root_cause.verdict == "partial"
    full = parse_answers({"root_cause": {"key": "other",
                                         "summary": "a cron job truncated the ledger"}})
    assert grade(key, full).root_cause.verdict == "matched"
