"""A project's router that puts django-sendfleet's models on the "mail" database."""

from typing import Any


class SendFleetOnMail:
    def _ours(self, model: Any) -> bool:
        return model._meta.app_label == "django_sendfleet"

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return "mail" if self._ours(model) else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return "mail" if self._ours(model) else None
