"""How many worker tasks a queue needs: a pure function of (observation, state, spec) -> decision.

The Scaler Lambda calls :func:`decide` every ~15 s with live ``GetQueueAttributes`` and ECS counts,
persists :class:`ScalerState` between invocations, and applies :class:`Decision`. ``taskrunner
simulate`` calls the very same function, so what the simulator shows is what production does.

Service mode sizes the service in message *slots* (a task has ``messages_per_task`` of them). The
bill is task-seconds and every new task pays about a minute of start-up, so the policy lets work
wait for slots as long as the latency allows rather than slots wait for work:

* **Queue term.** The backlog (visible + delayed) is worked off within the *standing horizon*:
  the acceptable latency minus the time new capacity takes to help (start latency + one
  evaluation interval). ``(backlog + z*sqrt(backlog)) * processing_s / horizon`` slots, the square
  root covering the spread of a small backlog's processing times. At a steady rate this settles
  with about ``horizon`` seconds of work queued: every slot busy, every message starting in time.
  Never more slots than messages to work on, and no new task for a backlog the tasks we have
  clear before a new one could even start.
* **Rate term.** When the latency is shorter than that reaction time, a backlog is a miss before
  it is a signal, so capacity must be there ahead of the arrivals: Little's law ``rate *
  processing_s`` plus a square-root margin, weighted by how much of the reaction time the latency
  cannot cover. The arrival rate comes from consecutive observations (change of queued +
  in-flight messages plus the completions the in-flight count implies): live, no CloudWatch lag.

Delayed messages count as backlog: SQS makes them visible within 15 min at most, and counting them
only ever adds capacity for work the queue already holds.

Scale-out is immediate. Scale-in follows the HPA rule: the largest recommendation of the last
``scale_in_window_s``. Once nothing has been queued for ``idle_before_zero_s`` the window has no
burst left to protect and the service settles to what is busy (plus the rate term). It goes to
zero only after ``idle_before_zero_s`` with nothing queued, delayed or in flight (like KEDA's
``cooldownPeriod`` next to the HPA window, but keyed on in-flight work too); if the latency is
shorter than a cold start, the last task stays warm for three mean gaps between messages (at most
``keep_warm_max_s``), because going to zero would make the next message late for sure. A
first message always gets a task at once (copilot-cli #3376), and a missing input never lowers
capacity.

**Drain.** Workers hold ECS task scale-in protection while they have work, so ECS only ever stops
idle (or still pending) tasks: no scale-in kills a job. The desired count never drops below the
tasks needed to hold the in-flight messages (``ceil(in_flight / messages_per_task)``, defence in
depth should a worker's protection fail). But a task with several slots that holds one
message is protected as much as a full one, and a trickle keeps every task partly busy, so a lowered
desired count alone would never take effect. :func:`drain_target` says how many protected workers
are surplus: the Scaler publishes it (the job's drain signal) and that many workers, at their next
message boundary, stop receiving, release protection and exit 0 (``taskrunner.worker.drain``); the
simulator runs the same steps.

Per-message mode launches one task per ``messages_per_task`` visible messages that no free slot
of a pending, running or just-launched (not yet listed by ECS) task will take, never beyond
``max_tasks``. Launches of the last ``launch_grace_s`` are remembered, so ECS's eventual
consistency cannot make two invocations launch for the same backlog (KEDA #525, #7330).
``min_tasks`` does not apply to launches there (a per-message task exits after its batch).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from taskrunner.domain.floors import ScheduledFloor, parse_floors

_EPS = 1e-9
#: How often a worker re-reads its job's drain signal at most (it checks at message boundaries):
#: the Scaler's cadence, so a drain starts within a round of being published.
DRAIN_CHECK_S = 15.0
#: Key of a job's drain signal in the Scaler's state table (the job's own state item is its bare name).
DRAIN_KEY_PREFIX = "drain/"


class ScalingParams(BaseModel):
    """A queue job's scaling settings, as its block in template.yaml declares them: the one model of them.

    The registry entry carries these (JobSpec.scaling); :class:`ScalingSpec` adds the mode and the policy's
    tuning. Defaults and bounds are those of jobs/job.yaml's parameters.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_tasks: int = Field(default=0, ge=0)
    max_tasks: int = Field(default=10, ge=1, le=5000)
    acceptable_latency_s: float = Field(default=300, gt=0)
    msg_processing_s: float = Field(default=30, gt=0)
    messages_per_task: int = Field(default=1, ge=1, le=10)
    scale_in_window_s: float = Field(default=300, ge=0)
    idle_before_zero_s: float = Field(default=120, ge=0)
    #: Minimum workers by schedule (service mode): see domain/floors.py for the form.
    scheduled_floors: Annotated[tuple[ScheduledFloor, ...], BeforeValidator(parse_floors)] = ()

    @model_validator(mode="after")
    def _min_le_max(self) -> Self:
        if self.min_tasks > self.max_tasks:
            raise ValueError(f"min_tasks ({self.min_tasks}) must not exceed max_tasks ({self.max_tasks})")
        if above := [f.workers for f in self.scheduled_floors if f.workers > self.max_tasks]:
            raise ValueError(f"a scheduled floor of {max(above)} workers exceeds max_tasks ({self.max_tasks})")
        return self


class ScalingSpec(ScalingParams):
    """What :func:`decide` needs: a job's :class:`ScalingParams`, its mode, and the policy's tuning knobs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["service", "per-message"]
    # Fargate: typically 45-90 s from RunTask to RUNNING (containers-roadmap #696, #649).
    start_latency_estimate_s: float = Field(default=60, ge=0)
    # How often the Scaler runs (an observation may be up to this old when it acts).
    evaluation_interval_s: float = Field(default=15, gt=0)
    # Share of the acceptable latency the queue term may plan to use.
    latency_budget_fraction: float = Field(default=1.0, gt=0, le=1)
    # Safety factor on the spread of a small backlog's total processing time (~95th percentile).
    tail_z: float = Field(default=1.65, ge=0)
    # Square-root staffing margin of the rate term, in units of sqrt(rate x processing time).
    rate_margin: float = Field(default=0.5, ge=0)
    # Time constant of the arrival-rate average.
    rate_smoothing_s: float = Field(default=120, gt=0)
    # Time constant of the long-run arrival rate used to keep a task warm.
    long_rate_smoothing_s: float = Field(default=3600, gt=0)
    keep_warm_max_s: float = Field(default=3600, ge=0)
    # Per-message mode: how long a launch is remembered while ECS may not list the task yet.
    launch_grace_s: float = Field(default=60, ge=0)

    @property
    def reaction_s(self) -> float:
        """How long new capacity takes to help: an evaluation interval plus the start latency."""
        return self.start_latency_estimate_s + self.evaluation_interval_s

    @property
    def cold_start_s(self) -> float:
        """A pessimistic first-message wait at zero tasks (the slow end of Fargate start-up)."""
        return 1.5 * self.start_latency_estimate_s + self.evaluation_interval_s


class Observation(BaseModel, frozen=True):
    at: float
    visible: int | None = Field(ge=0)
    in_flight: int | None = Field(ge=0)
    delayed: int | None = Field(ge=0)
    running: int | None = Field(ge=0)
    pending: int | None = Field(ge=0)
    desired: int | None = Field(default=None, ge=0)


class ScalerState(BaseModel, frozen=True):
    """Everything :func:`decide` remembers between invocations (JSON round-trips exactly)."""

    desired: int | None = None
    last_at: float | None = None
    last_backlog: int | None = None
    last_in_flight: int | None = None
    arrival_rate: float = 0.0  # messages/s, smoothed over rate_smoothing_s
    long_rate: float = 0.0  # messages/s, smoothed over long_rate_smoothing_s
    # (at, recommended tasks) within the scale-in window, oldest first.
    recommendations: tuple[tuple[float, int], ...] = ()
    quiet_since: float | None = None  # nothing queued or delayed since
    idle_since: float | None = None  # nothing queued, delayed or in flight since
    # Per-message mode: (at, tasks launched) within the launch grace period, and how many tasks
    # (running + pending) ECS should list once it has caught up with our launches.
    launches: tuple[tuple[float, int], ...] = ()
    expected_tasks: int = 0
    # Service mode: the drain surplus last published (the signal is rewritten only when it changes).
    drain_published: int = 0

    @classmethod
    def initial(cls) -> ScalerState:
        return cls()


class Decision(BaseModel, frozen=True):
    desired: int
    launch: int
    reason: str
    state: ScalerState


def target_backlog_per_task(spec: ScalingSpec) -> float:
    """Messages one task may have queued and still meet the latency (Copilot's acceptable backlog)."""
    return spec.acceptable_latency_s / spec.msg_processing_s


def decide(obs: Observation, state: ScalerState, spec: ScalingSpec, floor: int = 0) -> Decision:
    """``floor``: the scheduled floor now (domain/floors.py ``floor_at``); service mode only."""
    if spec.mode == "per-message":
        return _decide_per_message(obs, state, spec)
    return raise_to_floor(_decide_service(obs, state, spec), floor, spec, obs)


def raise_to_floor(decision: Decision, floor: int, spec: ScalingSpec, obs: Observation) -> Decision:
    """A separate last step: at least ``floor`` workers (within ``max_tasks``), never fewer than decided.

    Only the desired count rises: the scale-in window keeps the queue's own recommendations, so when the
    floor's window ends the service scales in on its backlog as if the floor had never been there.
    """
    target = min(floor, spec.max_tasks)
    if target <= decision.desired:
        return decision
    current = obs.desired if obs.desired is not None else decision.state.desired
    reason = "scheduled-floor" if current is None or target != current else "scheduled-floor-hold"
    return decision.model_copy(
        update={"desired": target, "reason": reason, "state": decision.state.model_copy(update={"desired": target})}
    )


def _clamp(n: int, spec: ScalingSpec) -> int:
    return max(spec.min_tasks, min(spec.max_tasks, n))


def _busy_tasks(in_flight: int, spec: ScalingSpec) -> int:
    return -(-in_flight // spec.messages_per_task)


def _current_desired(obs: Observation, state: ScalerState) -> int:
    if obs.desired is not None:
        return obs.desired
    if state.desired is not None:
        return state.desired
    if obs.running is not None and obs.pending is not None:
        return obs.running + obs.pending
    return 0


def _decide_service(obs: Observation, state: ScalerState, spec: ScalingSpec) -> Decision:
    current = _current_desired(obs, state)
    if (
        obs.visible is None
        or obs.in_flight is None
        or obs.delayed is None
        or obs.running is None
        or obs.pending is None
        or obs.desired is None
    ):
        return _hold_missing(obs, state, spec, current)

    now = obs.at
    backlog = obs.visible + obs.delayed
    in_flight = obs.in_flight
    rate, long_rate = _update_rates(obs, state, spec, backlog)
    rec = _recommend(backlog, in_flight, obs.running + obs.pending, rate, spec)

    # HPA-style scale-in: the largest recommendation of the window; scale-out at once.
    window = (*(r for r in state.recommendations if now - r[0] < spec.scale_in_window_s), (now, rec))
    target = rec if rec >= current else min(current, max(r for _, r in window))

    quiet = backlog == 0
    idle = quiet and in_flight == 0
    quiet_since = _since(state.quiet_since, quiet, now)
    idle_since = _since(state.idle_since, idle, now)
    settle_after = spec.idle_before_zero_s
    reason = ""
    # Zero only after nothing was queued or in flight for a while (longer if a task should stay
    # warm because a cold start would miss the latency).
    idle_for = now - idle_since if idle_since is not None else -1.0
    zero_ok = idle_for >= max(settle_after, _keep_warm_s(long_rate, spec))
    if quiet_since is not None and now - quiet_since >= settle_after:
        # Nothing queued for a while: the surplus is idle capacity and the window has no burst
        # left to protect. Down to what is busy (and the rate term).
        floor = 0 if zero_ok else min(current, 1)
        if target > max(rec, floor):
            target, reason = max(rec, floor), "settled"
    if target == 0 and current > 0 and not zero_ok:
        target = 1
    if target == 0:
        window = ()
    # Never below the tasks the in-flight messages need, and a first message always gets a task.
    # Partly busy tasks beyond that (several slots per task) drain: drain_target.
    target = max(target, _busy_tasks(in_flight, spec), 1 if backlog > 0 else 0)
    desired = _clamp(target, spec)

    if desired > current:
        reason = "scale-out"
    elif desired < current:
        reason = "scale-to-zero" if desired == 0 else (reason or "scale-in")
    elif idle and desired > 0:
        reason = "idle-wait"
    elif rec < current:
        reason = "hold-window"
    else:
        reason = "steady"

    next_state = state.model_copy(
        update={
            "desired": desired,
            "last_at": now,
            "last_backlog": backlog,
            "last_in_flight": in_flight,
            "arrival_rate": rate,
            "long_rate": long_rate,
            "recommendations": window,
            "quiet_since": quiet_since,
            "idle_since": idle_since,
        }
    )
    return Decision(desired=desired, launch=0, reason=reason, state=next_state)


def drain_target(obs: Observation, desired: int, spec: ScalingSpec) -> int:
    """How many protected workers should drain after the desired count became ``desired``.

    ECS stops unprotected tasks (pending, idle) for a lowered desired count on its own; a worker is
    protected exactly while it holds messages. With messages queued every running worker holds some
    (long polling), so the surplus ECS cannot stop is ``running - desired``, bounded by the in-flight
    count (each protected worker holds at least one message). Without a backlog and one message per
    task, 0: workers go idle, release protection and ECS stops them, and a drain could only race it
    into a relaunch. With several slots per task a trickle keeps every task partly busy (never idle,
    never stoppable), so the same bound applies then too. Unknown counts give 0: a drain is never
    triggered from a failed observation. Half the surplus is drained per round (like the HPA's
    scale-down rate policies), measured in the simulator: draining all of it at once churned tasks
    (drained, then relaunched) when the recommendation rose again. A drain that overshoots (a worker
    exiting where ECS also stopped one) costs a replacement launch, never a kill.
    """
    if obs.visible is None or obs.running is None or obs.in_flight is None:
        return 0
    if obs.visible == 0 and spec.messages_per_task == 1:
        return 0
    surplus = max(0, min(obs.running, obs.in_flight) - desired)
    # Half per round (at least one): with several slots per task the protected count is an upper bound,
    # and a surplus that reverses next round should cost a relaunch for half of it, not all.
    return math.ceil(surplus / 2)


def _since(previous: float | None, condition: bool, now: float) -> float | None:
    """Start of the current run of observations for which ``condition`` held."""
    if not condition:
        return None
    return previous if previous is not None else now


def _keep_warm_s(long_rate: float, spec: ScalingSpec) -> float:
    """How long the last idle task stays up before the service may go to zero."""
    if spec.acceptable_latency_s >= spec.cold_start_s:
        return 0.0
    # A cold start would miss the latency: keep the task for three mean gaps, so the next message
    # finds it warm ~95 % of the time (Poisson arrivals).
    if long_rate <= 0:
        return spec.keep_warm_max_s
    return min(spec.keep_warm_max_s, 3.0 / long_rate)


def _hold_missing(obs: Observation, state: ScalerState, spec: ScalingSpec, current: int) -> Decision:
    """A failed API call never lowers capacity; what is known may still raise it."""
    known_backlog = (obs.visible or 0) + (obs.delayed or 0)
    floor = _busy_tasks(obs.in_flight or 0, spec)
    desired = _clamp(max(current, floor, 1 if known_backlog > 0 else 0), spec)
    # The idle clocks restart: we cannot tell that the queue stayed empty.
    next_state = state.model_copy(update={"desired": desired, "quiet_since": None, "idle_since": None})
    return Decision(desired=desired, launch=0, reason="hold-missing-data", state=next_state)


def _update_rates(obs: Observation, state: ScalerState, spec: ScalingSpec, backlog: int) -> tuple[float, float]:
    """Arrival rate estimated from two consecutive observations, smoothed (short and long)."""
    in_flight = obs.in_flight or 0
    if state.last_at is None or state.last_backlog is None or state.last_in_flight is None:
        return state.arrival_rate, state.long_rate
    dt = obs.at - state.last_at
    if dt <= 0:
        return state.arrival_rate, state.long_rate
    # Each in-flight message completes at about 1/processing_s per second.
    completions = (state.last_in_flight + in_flight) / 2 * dt / spec.msg_processing_s
    arrived = max(0.0, (backlog + in_flight) - (state.last_backlog + state.last_in_flight) + completions)
    sample = arrived / dt
    rate = state.arrival_rate + (1.0 - math.exp(-dt / spec.rate_smoothing_s)) * (sample - state.arrival_rate)
    long_rate = state.long_rate + (1.0 - math.exp(-dt / spec.long_rate_smoothing_s)) * (sample - state.long_rate)
    return max(0.0, rate), max(0.0, long_rate)


def _recommend(backlog: int, in_flight: int, tasks_now: int, rate: float, spec: ScalingSpec) -> int:
    """Tasks needed now to keep the latency, before the scale-in window and the bounds."""
    p = spec.msg_processing_s
    reaction = spec.reaction_s
    # The queue may hold this much wait: what the budget leaves once new capacity could arrive.
    standing = spec.acceptable_latency_s * spec.latency_budget_fraction - reaction
    # 0 when the standing queue covers a cold start, 1 when the latency is shorter than one.
    ahead = min(1.0, max(0.0, 1.0 - standing / reaction))
    horizon = max(standing, reaction)
    queued = (backlog + spec.tail_z * math.sqrt(backlog)) * p / horizon
    # Never more slots than messages to work on: each queued one its own, plus the busy ones.
    queued = min(queued, float(backlog + in_flight))
    slots_now = tasks_now * spec.messages_per_task
    if slots_now and backlog * p <= slots_now * reaction:
        # The tasks we have clear this backlog before a new one could even start: adding one
        # would only add an idle task.
        queued = min(queued, float(slots_now))
    demand = rate * p
    provisioned = ahead * (demand + spec.rate_margin * math.sqrt(demand))
    if provisioned < 0.5:
        provisioned = 0.0  # a trickle: keeping a task warm for it is the keep-warm rule's call
    slots = queued + provisioned
    return math.ceil(slots / spec.messages_per_task - _EPS)


def _decide_per_message(obs: Observation, state: ScalerState, spec: ScalingSpec) -> Decision:
    now = obs.at
    recent = tuple(r for r in state.launches if now - r[0] < spec.launch_grace_s)
    if obs.visible is None or obs.in_flight is None or obs.running is None or obs.pending is None:
        held = _clamp(state.desired if state.desired is not None else 0, spec)
        next_state = state.model_copy(update={"desired": held, "launches": recent})
        return Decision(desired=held, launch=0, reason="hold-missing-data", state=next_state)

    observed = obs.running + obs.pending
    recent_total = sum(n for _, n in recent)
    # Tasks we launched that ECS does not list yet (bounded by what we launched recently, so a
    # task that finished and exited meanwhile cannot hold launches back for long).
    unconfirmed = min(recent_total, max(0, state.expected_tasks - observed)) if recent else 0
    known = observed + unconfirmed
    # Slots of listed, pending and just-launched tasks not yet holding a message will take
    # visible messages: only the rest needs new tasks.
    free_slots = max(0, known * spec.messages_per_task - obs.in_flight)
    uncovered = max(0, obs.visible - free_slots)
    needed = -(-uncovered // spec.messages_per_task)
    room = max(0, spec.max_tasks - known)
    launch = min(needed, room)

    if launch:
        recent = (*recent, (now, launch))
        reason = "launch"
    elif needed:
        reason = "at-max"
    else:
        reason = "steady"
    desired = _clamp(known + launch, spec)
    next_state = state.model_copy(
        update={
            "desired": desired,
            "last_at": now,
            "launches": recent,
            "expected_tasks": known + launch,
            "idle_since": None,
        }
    )
    return Decision(desired=desired, launch=launch, reason=reason, state=next_state)


def after_launch(decision: Decision, started: int) -> ScalerState:
    """The next state when only ``started`` of ``decision.launch`` tasks started (a capped round, or RunTask
    failures): the rest is not remembered as launched, so the next round asks for it again."""
    missing = decision.launch - started
    state = decision.state
    if missing <= 0 or not state.launches:
        return state
    at, _ = state.launches[-1]
    launches = (*state.launches[:-1], (at, started)) if started else state.launches[:-1]
    return state.model_copy(
        update={
            "launches": launches,
            "expected_tasks": max(0, state.expected_tasks - missing),
            "desired": max(0, (state.desired or 0) - missing),
        }
    )
