"""Django's own email-backend tests (``tests/mail/`` of Django's sdist), run against
django-sendfleet's backend with a mailbox read from the sandbox. See docs/django-mail-tests.md."""
