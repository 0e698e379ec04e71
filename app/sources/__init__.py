"""Webhook receivers: Alertmanager, Grafana Alerting and PagerDuty plug in with a URL and
a secret.

- :mod:`.alertmanager`, :mod:`.pagerduty`: pure mapping of a decoded body to
  ``alerts.state`` / ``incidents.events`` records (deterministic ids, policy of
  ``sources.yml``);
- :mod:`.signatures`: bearer tokens and HMAC signatures, compared in constant time;
- :mod:`.credentials`: the receivers' secrets (``INTEL_SOURCE_SECRETS[_FILE]``);
- :mod:`.publishing`: the producing side as a protocol, and the memory that keeps
  repeats off the topic; :mod:`.kafka`: its aiokafka implementation;
- :mod:`.receivers`: the HTTP routes; :mod:`.worker`: mounting them on the worker;
  :mod:`.snippets`: what ``run`` prints to paste into Alertmanager.
"""
