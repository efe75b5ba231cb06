"""Messages and backends the tests send with."""

from django.core.mail import EmailMessage

SENDER = "Shop <shop@example.com>"


BACKEND = "django_sendfleet.backends.EmailBackend"


QUEUED_BACKEND = "django_sendfleet.backends.QueuedEmailBackend"


def message(to=("ann@example.com",), sender=SENDER, subject="Hello", **kwargs) -> EmailMessage:
    """A plain message from the shop, to Ann unless told otherwise."""
    return EmailMessage(subject, "Plain body", sender, list(to), **kwargs)
