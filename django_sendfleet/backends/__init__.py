"""Django email backends that send through SendFleet.

``EmailBackend`` sends each message as one API request per recipient; ``QueuedEmailBackend``
writes each recipient to the outbox and lets a task send it after the transaction commits.
Import them from here (settings name ``"django_sendfleet.backends.EmailBackend"``).
"""

from .base import EmailBackend, QueuedEmailBackend

__all__ = ["EmailBackend", "QueuedEmailBackend"]
