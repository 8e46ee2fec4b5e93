"""EventBridge Scheduler expressions, evaluated locally: moved to :mod:`taskrunner.domain.cron`, because the
Scaler's scheduled floors evaluate the same cron expressions in Lambda (where ``taskrunner.local`` is not
packaged). This module keeps its public names for local mode."""

from taskrunner.domain.cron import AtSchedule, CronSchedule, RateSchedule, Schedule, ScheduleError, parse_schedule

__all__ = ["AtSchedule", "CronSchedule", "RateSchedule", "Schedule", "ScheduleError", "parse_schedule"]
