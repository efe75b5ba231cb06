from django.apps import AppConfig
from django.core import checks


class SendFleetConfig(AppConfig):
    name = "django_sendfleet"
    verbose_name = "SendFleet"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .checks import system_checks

        # Settings only: no network, no database (see checks.py).
        checks.register(system_checks, "sendfleet")
