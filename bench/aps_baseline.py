"""Row 4's baseline: APScheduler 3 holding N cron jobs in its memory job store (started, paused,
one CronTrigger per job, a dummy function), the way a scheduler that keeps schedules in memory
would. Prints "ready" once every job is added, then waits to be measured and stopped.

    python -m bench.aps_baseline 1000000 "0 3 * * *"
"""

from __future__ import annotations

import sys
import time

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger


def job() -> None:
    """The dummy job function."""


def main(count: int, expression: str) -> None:
    scheduler = BackgroundScheduler(jobstores={"default": MemoryJobStore()}, timezone="UTC")
    scheduler.start(paused=True)
    started = time.perf_counter()
    for i in range(count):
        # Ids in ascending order and one expression: every job is appended at the end of the
        # store's sorted list, so adding a million takes minutes rather than an hour; the memory
        # held per job is the same as for varied expressions.
        trigger = CronTrigger.from_crontab(expression, timezone="UTC")
        scheduler.add_job(job, trigger, id=f"schedule-{i:08d}")
    print(f"ready: {count} jobs in {time.perf_counter() - started:.1f} s", flush=True)
    while True:  # measured from outside, then ended by SIGTERM (default action: exit)
        time.sleep(3600)


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "0 3 * * *")
