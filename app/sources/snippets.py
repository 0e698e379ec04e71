"""What a user pastes into Alertmanager to send its alerts here (printed by ``run``)."""

from __future__ import annotations

__all__ = ["alertmanager_receiver"]

RECEIVER_NAME = "incident-intel"


def alertmanager_receiver(url: str, token: str) -> str:
    """An ``alertmanager.yml`` fragment: the receiver, and a route that copies every alert
    to it while the existing routes go on (``continue: true``)."""
    return f"""\
route:
  routes:
    - receiver: {RECEIVER_NAME}
      continue: true   # first child route: every alert also goes to your other receivers
receivers:
  - name: {RECEIVER_NAME}
    webhook_configs:
      - url: {url}
        send_resolved: true   # resolved transitions are half of what is counted
        max_alerts: 0         # 0: never truncate a group (truncated alerts are lost)
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"""
