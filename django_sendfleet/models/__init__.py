"""The app's models: what it records of each send, and what it keeps to decide the next one.

Import them from here (``from django_sendfleet.models import SendLog``); the modules behind
this face may move.
"""

from .forgotten import ForgottenAddress
from .log_status import PROBLEM_STATUSES, LogStatus
from .reputation_level import ReputationLevel
from .rollups import SendRollup
from .send_log import DETAIL_MAX_LENGTH, MessageContent, SendLog, WebhookEvent, normalise_email
from .suppression import Suppression

__all__ = [
    "DETAIL_MAX_LENGTH",
    "PROBLEM_STATUSES",
    "ForgottenAddress",
    "LogStatus",
    "MessageContent",
    "ReputationLevel",
    "SendLog",
    "SendRollup",
    "Suppression",
    "WebhookEvent",
    "normalise_email",
]
