from django.apps import AppConfig
from django.core import checks


class SendFleetConfig(AppConfig):
    name = "django_sendfleet"
    verbose_name = "SendFleet"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .checks.system import system_checks
        from .checks.webhook_sqlite import check_webhook_sqlite_options

        # Settings only: no network, no database (see checks.py).
        checks.register(system_checks, "sendfleet")
        checks.register(check_webhook_sqlite_options, "sendfleet")
