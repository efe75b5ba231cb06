from django.apps import AppConfig


class SendFleetConfig(AppConfig):
    name = "django_sendfleet"
    verbose_name = "SendFleet"
    default_auto_field = "django.db.models.BigAutoField"
