"""Follow-up delivery: a reference consumer of ``intel.followups`` that hands each
follow-up to a webhook or a JSONL file exactly once per dedupe key.

:mod:`~app.delivery.decision` decides (pure); :mod:`~app.delivery.ledger` and
:mod:`~app.delivery.sinks` hold the state and do the I/O;
:mod:`~app.delivery.deliverer` runs the consumer loop.
"""
