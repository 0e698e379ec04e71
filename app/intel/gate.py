"""The release gate (recurrence_watch): is a service being deployed into a known-bad state?

Over the service's incidents in each window: any signature or kind of the
service at ``high`` (or ``warn``) recurrence, and the worst severity seen.
``strict`` fails only on high recurrence together with a severity in
``fail_on.severity_in``; ``warn`` and ``off`` never fail. ``off`` and internal
errors give ``skipped: true``: the gate fails open, as a release must not be
blocked by the intelligence being down.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime

from app.contracts import SEVERITIES, GateMode, GateRequest, GateResponse
from app.intel.incidents import Record
from app.intel.levels import level
from app.intel.periods import from_micros, in_window
from app.policy import GatePolicy, IntelPolicy


class UnknownProfile(ValueError):
    """The request names a profile ``release_gate.yml`` does not define."""


def settings(request: GateRequest, policy: GatePolicy) -> tuple[GateMode, list[int], str]:
    """Mode, windows and service after applying the request's overrides."""
    profile = policy.profiles.get(request.profile)
    if profile is None:
        known = ", ".join(sorted(policy.profiles))
        raise UnknownProfile(f"profile: unknown profile {request.profile!r} (known: {known})")
    mode: GateMode = request.recurrence_watch_mode or profile.mode
    if not request.run_recurrence_watch:
        mode = "off"
    windows = request.recurrence_watch_windows_days or profile.windows_days or list(
        policy.default_windows_days)
    return mode, sorted(set(windows)), request.recurrence_watch_service or request.service


def _ranked(counts: Counter[str], wanted: set[str], short: bool) -> list[str]:
    keys = sorted(wanted, key=lambda k: (-counts[k], k))
    return [k[:8] if short else k for k in keys][:5]


def _no_check() -> None:
    return None


def evaluate(request: GateRequest, records: list[Record], as_of: int, intel: IntelPolicy,
             gate: GatePolicy, step: Callable[[], None] = _no_check) -> GateResponse:
    """The gate's answer from the service's incidents started within the largest window.

    ``step`` runs before each window; it may raise to abandon the read.
    """
    mode, windows, service = settings(request, gate)
    if mode == "off":
        return GateResponse(service=service, profile=request.profile, mode=mode,
                            windows_days=windows, pass_=True, skipped=True,
                            has_high_recurrence=False, has_warn_recurrence=False,
                            max_severity_seen=None, high_signatures=[], high_kinds=[],
                            total_incidents=0,
                            reasons=["recurrence watch is off"], as_of=from_micros(as_of))
    thresholds = intel.recurrence.thresholds
    high_sigs: Counter[str] = Counter()
    high_kinds: Counter[str] = Counter()
    has_warn = False
    reasons: list[str] = []
    seen: list[Record] = []
    for days in windows:
        step()
        inside = [r for r in records if r.service == service and in_window(r.started, as_of, days)]
        seen.extend(inside)
        for key_type, store, counts in (
            ("signature", high_sigs, Counter(r.signature for r in inside)),
            ("kind", high_kinds, Counter(r.kind for r in inside)),
        ):
            threshold = thresholds.for_type(key_type)
            for key, count in sorted(counts.items()):
                lvl = level(count, threshold)
                if lvl == "high":
                    store[key] = max(store[key], count)
                    label = key[:8] if key_type == "signature" else key
                    reasons.append(f"high recurrence: {key_type} {label} ({days}d={count})")
                elif lvl == "warn":
                    has_warn = True
    largest = max(windows)
    total = sum(1 for r in records if r.service == service and in_window(r.started, as_of,
                                                                          largest))
    worst = min((r.severity for r in seen), key=SEVERITIES.index, default=None)
    has_high = bool(high_sigs or high_kinds)
    fails = mode == "strict" and has_high and worst in gate.fail_on.severity_in
    if fails:
        reasons.append(f"strict: high recurrence with {worst} incidents "
                       f"(fail_on {', '.join(gate.fail_on.severity_in)})")
    elif has_high and mode == "warn":
        reasons.append("warn mode: reported, not blocking")
    if not reasons:
        reasons.append("no warn or high recurrence for this service")
    return GateResponse(
        service=service,
        profile=request.profile,
        mode=mode,
        windows_days=windows,
        pass_=not fails,
        skipped=False,
        has_high_recurrence=has_high,
        has_warn_recurrence=has_warn,
        max_severity_seen=worst,
        high_signatures=_ranked(high_sigs, set(high_sigs), short=True),
        high_kinds=_ranked(high_kinds, set(high_kinds), short=False),
        total_incidents=total,
        reasons=reasons,
        as_of=from_micros(as_of),
    )


def failed_open(request: GateRequest, reason: str, as_of: datetime) -> GateResponse:
    """The answer when the gate itself broke: skipped, passing, with the reason."""
    return GateResponse(service=request.recurrence_watch_service or request.service,
                        profile=request.profile, mode=request.recurrence_watch_mode or "warn",
                        windows_days=request.recurrence_watch_windows_days or [],
                        pass_=True, skipped=True, has_high_recurrence=False,
                        has_warn_recurrence=False, max_severity_seen=None, high_signatures=[],
                        high_kinds=[], total_incidents=0, reasons=[f"internal error: {reason}"],
                        as_of=as_of)
