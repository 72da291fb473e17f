"""Promotion events: signed MLflow webhooks → intake → durable queue → workers → services.

``signing`` (HMAC v1), ``ledger`` (deliveries, events, jobs, leases in SQL), ``routing``
(event → jobs), ``queue`` (Huey on SQLite or Redis, the tasks), ``jobs`` (one service run per
(model, version, service, config hash), idempotent), ``intake`` (the HTTP receiver),
``reconciler`` (registry state vs recorded runs), ``worker`` (the consumer process).
"""
