"""``time.sleep`` for the Python processes of .ci/run's libfaketime runs (.ci/faketime.sh
loads it into each of them through a .pth file in the virtualenv while those runs last).

The runs keep the monotonic clock real (FAKETIME_DONT_FAKE_MONOTONIC=1): with a faked one, every
wait with a timeout on a lock, Event or Queue hangs, since libfaketime 0.9.10 (Debian 12) does
not translate sem_clockwait's deadline. But with it real, 0.9.10 turns the absolute monotonic
deadline of clock_nanosleep, which time.sleep uses, into a negative one: every sleep raises
EINVAL (fixed upstream after 0.9.10). select()'s relative timeout is left alone, so sleep on it.
"""

from __future__ import annotations

import select
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        select.select([], [], [], left)


time.sleep = _sleep
