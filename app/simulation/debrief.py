"""The debrief: a Markdown comparison of a participant's findings with the key."""

from __future__ import annotations

from app.contracts import format_timestamp
from app.simulation.answers import Answers
from app.simulation.grading import Grade
from app.simulation.models import AnswerKey

_VERDICTS = {
    "exact": "exact",
    "one_off": "one level off",
    "wrong": "wrong",
    "missing": "not answered",
    "matched": "matched",
    "partial": "mechanism named, key not matched",
    "missed": "missed",
}


def _pct(value: float) -> str:
    return f"{round(value * 100)}%"


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _or_dash(text: str | None) -> str:
    return text.replace("|", "\\|") if text else "—"


def render_debrief(key: AnswerKey, answers: Answers, grade: Grade) -> str:
    exp = key.expected
    who = answers.participant or "(participant not named)"
    w = grade.weights
    lines = [
        f"# Debrief: {key.title}",
        "",
        f"- Exercise: `{key.simulation_id}` ({key.source}, {key.difficulty})",
        f"- Participant: {who}",
        f"- Score: **{grade.percent}/100**"
        + (f" (includes −{_pct(grade.penalty)} for red herrings chased)" if grade.penalty else ""),
        "",
        "| Task | Your answer | Expected | Result | Weight |",
        "|---|---|---|---|---|",
        f"| Triage (severity) | {_or_dash(grade.severity.answer)} | {exp.severity.level} | "
        f"{_VERDICTS[grade.severity.verdict]} ({_pct(grade.severity.score)}) | "
        f"{_pct(w['severity'])} |",
        f"| Analyse (root cause) | {_or_dash(grade.root_cause.answer_key)} | "
        f"{exp.root_cause.key} | {_VERDICTS[grade.root_cause.verdict]} "
        f"({_pct(grade.root_cause.score)}) | {_pct(w['root_cause'])} |",
        f"| Scope (blast radius) | see below | see below | error {_pct(grade.blast_radius.error)} "
        f"({_pct(grade.blast_radius.score)}) | {_pct(w['blast_radius'])} |",
        f"| Remediate | {len(answers.remediation)} action(s) | {len(exp.remediation)} action(s) | "
        f"{_pct(grade.remediation.coverage)} covered | {_pct(w['remediation'])} |",
        f"| Prevent (regression test) | {len(answers.regression_tests)} test(s) | "
        f"{exp.regression_test.name} | {_pct(grade.regression_test.coverage)} covered | "
        f"{_pct(w['regression_test'])} |",
        "",
        "## Triage",
        "",
        f"Expected **{exp.severity.level}** ({exp.severity.priority}). {exp.severity.rationale}",
        "",
    ]
    if answers.severity_rationale:
        lines += [f"Your reasoning: {answers.severity_rationale}", ""]
    lines += [
        "## Root cause",
        "",
        f"Expected `{exp.root_cause.key}`: {exp.root_cause.sentence}",
        "",
    ]
    if grade.root_cause.answer_summary:
        lines += [f"Your summary: {grade.root_cause.answer_summary}", ""]
    br = exp.blast_radius
    rows = {f.field: f for f in grade.blast_radius.fields}
    lines += [
        "## Blast radius",
        "",
        "| | Yours | Expected | Error |",
        "|---|---|---|---|",
        *[f"| {name.replace('_', ' ')} | {_num(rows[name].answer)} | "
          f"{_num(rows[name].expected)} | {_pct(rows[name].error)} |"
          for name in ("sessions", "users", "duration_minutes")],
        f"| services | {', '.join(grade.blast_radius.services_answered) or '—'} | "
        f"{', '.join(grade.blast_radius.services_expected)} | "
        f"missing: {', '.join(grade.blast_radius.services_missing) or 'none'}; "
        f"extra: {', '.join(grade.blast_radius.services_extra) or 'none'} |",
        "",
        f"Affected from {format_timestamp(br.start)} to {format_timestamp(br.end)}.",
    ]
    if br.session_ids:
        lines += [f"Affected sessions: {', '.join(br.session_ids)}."]
    if br.user_ids:
        lines += [f"Affected users: {', '.join(br.user_ids)}."]
    lines += ["", "## Remediation", ""]
    covered = set(grade.remediation.covered)
    for action in exp.remediation:
        mark = "x" if action.id in covered else " "
        lines.append(f"- [{mark}] {action.action} (`{action.id}`)")
    lines += [
        "",
        "## Regression test",
        "",
        f"Expected `{exp.regression_test.name}`: {exp.regression_test.description}",
        "",
    ]
    aspects = set(grade.regression_test.covered)
    for aspect in exp.regression_test.covers:
        mark = "x" if aspect.aspect in aspects else " "
        lines.append(f"- [{mark}] {aspect.aspect}")
    lines += ["", "## Red herrings", ""]
    if not grade.red_herrings:
        lines.append("This exercise had none.")
    labels = {"chased": "chased (−points)", "ruled_out": "ruled out", "ignored": "not mentioned"}
    for herring in grade.red_herrings:
        lines += [
            f"- **{herring.id}**: {labels[herring.status]}. Looked like: {herring.looks_like} "
            f"Ruled out by: {herring.rules_out}",
        ]
    if key.postmortem:
        lines += ["", "## Postmortem (withheld during the exercise)", "", key.postmortem]
    lines += [
        "",
        "## Discussion",
        "",
        "- Which piece of evidence pointed at the root cause first, and how long did it take "
        "to notice it?",
        "- Which expected action or test aspect was missed, and would the runbook have "
        "prompted it?",
        "- What one change (alert, dashboard, runbook, test) would have made this faster?",
        "",
    ]
    return "\n".join(lines)
