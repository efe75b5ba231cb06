"""Include in the project's URLconf: ``path("sendfleet/", include("django_sendfleet.urls"))``."""

from django.urls import path

from .webhooks import view as webhooks

__all__ = [
    "urlpatterns",
]

urlpatterns = [
    path("webhook/", webhooks.webhook_view, name="sendfleet-webhook"),
]
