"""The durable queue on a Redis-compatible server: ledger, event streams, Celery, the client."""
