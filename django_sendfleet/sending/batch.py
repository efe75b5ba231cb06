"""Which sends of one ``send_messages`` call are not attempted after an earlier error.

After a 401, a quota or account error, every later request would fail the same way (and ten
401s in a row get the server's IP blocked), so the batch stops. After a domain error, later
messages from that domain are skipped; other domains still go out. The error table says which
error does what.
"""

from __future__ import annotations

from .. import error_table
from ..error_spec import BatchEffect
from ..exceptions import SendFleetError


class BatchGuard:
    def __init__(self) -> None:
        self._stopped_by: SendFleetError | None = None
        self._blocked_domains: dict[str, SendFleetError] = {}

    def blocker(self, from_domain: str) -> SendFleetError | None:
        """The earlier error that rules out a send from this domain, if any."""
        return self._stopped_by or self._blocked_domains.get(from_domain)

    def record(self, error: SendFleetError, from_domain: str) -> None:
        effect = error_table.spec_for_error(error).batch_effect
        if effect is BatchEffect.STOP_BATCH:
            self._stopped_by = error
        elif effect is BatchEffect.SKIP_DOMAIN:
            self._blocked_domains[from_domain] = error
