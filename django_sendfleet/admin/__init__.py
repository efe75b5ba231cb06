"""The admin: the send log for reviewing failures, the suppression list, and a dashboard."""

from . import registration  # noqa: F401  (registers the ModelAdmins)
