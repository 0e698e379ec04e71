"""Incident Intelligence: incident recurrence, correlation and follow-ups over Kafka."""

__version__ = "0.1.0"
