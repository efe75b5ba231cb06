"""Queued sending: the outbox rows, the worker that sends them, held rows and the backlog."""
