"""django-sendfleet's configuration, read lazily through one object: ``SendFleetSettings``.

Import from here; the modules behind this face may move.
"""

from ..credentials.secret import Secret
from .settings import DEFAULT_API_URL, SendFleetSettings, mailer_options, pop_mailer_options

__all__ = [
    "DEFAULT_API_URL",
    "Secret",
    "SendFleetSettings",
    "mailer_options",
    "pop_mailer_options",
]
