"""RQ's job timeout (SIGALRM), with its signal handler installed once instead of twice per job.

``UnixSignalDeathPenalty`` installs a SIGALRM handler and sets the alarm before every job, then
clears both after it: four system calls per job, a tenth of a short job's bookkeeping here. This
class keeps one handler installed for the process and only sets and clears the alarm: the same
timeout, raised the same way (RQ's ``handle_death_penalty``), two system calls. An alarm that
fires with no job armed (it cannot, short of a stray ``kill -ALRM``) is ignored instead of
terminating the worker.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import ClassVar

from rq.timeouts import UnixSignalDeathPenalty


class StandingAlarm(UnixSignalDeathPenalty):
    #: The timeout being enforced now, if any.
    armed: ClassVar[StandingAlarm | None] = None

    def setup_death_penalty(self) -> None:
        if signal.getsignal(signal.SIGALRM) is not _fire:  # first job, or someone replaced it
            signal.signal(signal.SIGALRM, _fire)
        StandingAlarm.armed = self
        signal.alarm(self._timeout)

    def cancel_death_penalty(self) -> None:
        signal.alarm(0)
        StandingAlarm.armed = None


def _fire(signum: int, frame: FrameType | None) -> None:
    if (armed := StandingAlarm.armed) is not None:
        armed.handle_death_penalty(signum, frame)
