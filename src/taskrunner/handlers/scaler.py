"""Scaler Lambda: runs every minute and observes every ≤15 s within it, scaling each queue job."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskrunner.adapters.ecs import EcsCluster
from taskrunner.adapters.queues import Queues
from taskrunner.adapters.registry import SsmRegistry
from taskrunner.adapters.state import DynamoStateStore
from taskrunner.domain.autoscale import Autoscaler, JobRound, Launched, Launcher, launched_by_job
from taskrunner.domain.triggers import describe
from taskrunner.observability import count, emit, logger, metrics, tracer
from taskrunner.settings import ScalerSettings


@dataclass(frozen=True)
class Service:
    settings: ScalerSettings
    autoscaler: Autoscaler


@functools.cache
def service() -> Service:
    settings = ScalerSettings.from_env()
    ecs = EcsCluster()
    states = DynamoStateStore(settings.state_table)
    autoscaler = Autoscaler(
        # Re-read every minute in the background (a new or changed job is seen within about a minute), paged at
        # half of Parameter Store's default 40/s, which the Dispatcher's reads share.
        SsmRegistry(settings.registry_prefix, max_age_s=30, pages_per_s=20),
        Queues(),
        ecs,
        ecs,
        states,
        stack=settings.bounds(),
        clock=time.time,
        sleep=time.sleep,
        interval_s=settings.interval_s,
        registry_refresh_s=60,
        # Launches drain in a thread, paced at the Scaler's share of Fargate's rate, while rounds observe.
        launcher=Launcher(ecs, states, clock=time.time, sleep=time.sleep, background=True),
        drains=states,  # each service job's drain signal, next to its state
    )
    return Service(settings, autoscaler)


def report_launched(done: list[Launched]) -> None:
    for launch in done:
        if launch.error:
            count("ScalingErrors", job=launch.job)
            logger.error(
                "launch short", job=launch.job, launched=launch.launched, requested=launch.requested, error=launch.error
            )
        else:
            logger.info("launched", job=launch.job, launched=launch.launched)


def report(result: JobRound) -> None:
    obs, decision = result.observation, result.decision
    emit(
        {
            "Backlog": obs.visible,
            "InFlight": obs.in_flight,
            "Running": obs.running,
            "Desired": decision.desired,
            "Launched": result.launched,
        },
        job=result.job,
    )
    count("ScalingDecisions", job=result.job, reason=decision.reason)
    if result.error:
        count("ScalingErrors", job=result.job)
        logger.error("scaling not applied", job=result.job, error=result.error, desired=decision.desired)
    elif result.applied:
        logger.info(
            "scaled", job=result.job, reason=decision.reason, desired=decision.desired, launched=result.launched
        )


def report_invalid(invalid: dict[str, str]) -> None:
    """Registry entries that run nothing are reported every round (metric, alarm, log), never silently absent."""
    count("InvalidJobSpecs", len(invalid))
    for name, reason in invalid.items():
        logger.error("invalid registry entry", job=name, reason=reason)


class ScalerEvent(BaseModel):
    """A schedule tick carries nothing; `{"rounds": N}` limits an invocation (taskrunner invoke, tests, local mode)."""

    model_config = ConfigDict(extra="ignore")

    rounds: int = Field(default=0, ge=0, le=240)


def handle_event(svc: Service, event: Any, context: LambdaContext) -> dict[str, Any]:
    try:
        request = ScalerEvent.model_validate(event if isinstance(event, dict) else {"rounds": event})
    except ValidationError as exc:
        # Scaling on a bad request would act on a misconfiguration; say why and do nothing (no retry storm).
        logger.error("invalid scaler event", error=describe(exc))
        count("ScalerInvalidEvents")
        return {"rounds": 0, "error": describe(exc)}
    started, rounds, results, done = time.monotonic(), 0, [], []
    launcher = svc.autoscaler.launcher
    if launcher.background:
        launcher.start()
    while True:
        round_started = time.monotonic()
        results = svc.autoscaler.round()
        for result in results:
            report(result)
        report_invalid(svc.autoscaler.invalid)
        finished = launcher.collect()
        report_launched(finished)
        done += finished
        rounds += 1
        elapsed = time.monotonic() - started
        if (request.rounds and rounds >= request.rounds) or elapsed + svc.settings.interval_s > svc.settings.window_s:
            break
        if context.get_remaining_time_in_millis() / 1000 < svc.settings.interval_s * 2:
            break
        time.sleep(max(0.0, svc.settings.interval_s - (time.monotonic() - round_started)))
    if launcher.background:
        # Launches still queued get until the invocation's end (minus a margin); what is left is asked for again.
        finished = launcher.finish(max(0.0, context.get_remaining_time_in_millis() / 1000 - 5))
        report_launched(finished)
        done += finished
    count("ScalerRounds", rounds)
    launched = launched_by_job(done)
    return {
        "rounds": rounds,
        "jobs": {
            r.job: {
                "desired": r.decision.desired,
                # Tasks this invocation launched for the job (the launcher drains after the rounds observe).
                "launched": r.launched + launched.get(r.job, 0),
                "reason": r.decision.reason,
                "error": r.error,
            }
            for r in results
        },
    }


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_event(service(), event, context)
