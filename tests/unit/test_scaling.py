"""The scaling decision: properties every decision must have, and a few worked examples."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from taskrunner.domain.scaling import (
    Decision,
    Observation,
    ScalerState,
    ScalingSpec,
    decide,
    target_backlog_per_task,
)

TICK = 15.0


# -- strategies ---------------------------------------------------------------------------------


@st.composite
def specs(draw: st.DrawFn, mode: str = "service") -> ScalingSpec:
    max_tasks = draw(st.integers(1, 500))
    return ScalingSpec(
        mode=mode,  # type: ignore[arg-type]
        min_tasks=draw(st.integers(0, min(3, max_tasks))),
        max_tasks=max_tasks,
        acceptable_latency_s=draw(st.sampled_from([30.0, 60.0, 120.0, 180.0, 600.0, 3600.0])),
        msg_processing_s=draw(st.sampled_from([0.5, 2.0, 10.0, 30.0, 300.0])),
        messages_per_task=draw(st.integers(1, 10)),
    )


counts = st.integers(0, 5000)


@st.composite
def observations(draw: st.DrawFn, at: float, desired_max: int) -> Observation:
    return Observation(
        at=at,
        visible=draw(counts),
        in_flight=draw(counts),
        delayed=draw(st.integers(0, 50)),
        running=draw(st.integers(0, desired_max)),
        pending=draw(st.integers(0, 20)),
        desired=draw(st.integers(0, desired_max)),
    )


@st.composite
def histories(draw: st.DrawFn, spec: ScalingSpec) -> tuple[ScalerState, float, int]:
    """A state reached by feeding ``decide`` a random history; returns it, its time and desired."""
    state = ScalerState.initial()
    at, desired = 0.0, draw(st.integers(0, spec.max_tasks))
    for _ in range(draw(st.integers(0, 6))):
        at += draw(st.sampled_from([TICK, TICK, 30.0, 200.0]))
        obs = Observation(
            at=at,
            visible=draw(st.integers(0, 300)),
            in_flight=draw(st.integers(0, 300)),
            delayed=0,
            running=desired,
            pending=0,
            desired=desired,
        )
        decision = decide(obs, state, spec)
        state, desired = decision.state, decision.desired
    return state, at, desired


def service_obs(at: float, visible: int, in_flight: int, tasks: int, delayed: int = 0) -> Observation:
    return Observation(
        at=at, visible=visible, in_flight=in_flight, delayed=delayed, running=tasks, pending=0, desired=tasks
    )


def run(spec: ScalingSpec, steps: list[Observation], state: ScalerState | None = None) -> list[Decision]:
    state = state or ScalerState.initial()
    out = []
    for obs in steps:
        decision = decide(obs, state, spec)
        state = decision.state
        out.append(decision)
    return out


def busy_floor(in_flight: int, spec: ScalingSpec) -> int:
    return min(spec.max_tasks, math.ceil(in_flight / spec.messages_per_task))


# -- properties: service mode -------------------------------------------------------------------


@settings(max_examples=300)
@given(data=st.data(), spec=specs())
def test_desired_is_always_within_bounds_and_never_below_busy_tasks(data: st.DataObject, spec: ScalingSpec) -> None:
    state, at, _ = data.draw(histories(spec))
    obs = data.draw(observations(at + TICK, desired_max=spec.max_tasks))

    decision = decide(obs, state, spec)

    assert spec.min_tasks <= decision.desired <= spec.max_tasks
    assert decision.desired >= busy_floor(obs.in_flight or 0, spec)
    assert decision.launch == 0


@settings(max_examples=300)
@given(data=st.data(), spec=specs())
def test_more_backlog_never_means_fewer_tasks(data: st.DataObject, spec: ScalingSpec) -> None:
    state, at, _ = data.draw(histories(spec))
    obs = data.draw(observations(at + TICK, desired_max=spec.max_tasks))
    extra_visible = data.draw(st.integers(0, 5000))
    extra_delayed = data.draw(st.integers(0, 50))
    more = obs.model_copy(
        update={"visible": (obs.visible or 0) + extra_visible, "delayed": (obs.delayed or 0) + extra_delayed}
    )

    assert decide(more, state, spec).desired >= decide(obs, state, spec).desired


@settings(max_examples=300)
@given(data=st.data(), spec=specs())
def test_missing_data_never_lowers_capacity(data: st.DataObject, spec: ScalingSpec) -> None:
    state, at, _ = data.draw(histories(spec))
    obs = data.draw(observations(at + TICK, desired_max=spec.max_tasks))
    missing = data.draw(
        st.lists(
            st.sampled_from(["visible", "in_flight", "delayed", "running", "pending", "desired"]),
            min_size=1,
            unique=True,
        )
    )
    broken = obs.model_copy(update=dict.fromkeys(missing))
    current = obs.desired if "desired" not in missing else state.desired
    if current is None:
        current = 0

    decision = decide(broken, state, spec)

    assert decision.desired >= min(spec.max_tasks, max(spec.min_tasks, current))
    assert decision.reason == "hold-missing-data"


@settings(max_examples=300)
@given(data=st.data(), spec=specs())
def test_a_first_message_at_zero_tasks_gets_a_task_at_once(data: st.DataObject, spec: ScalingSpec) -> None:
    state, at, _ = data.draw(histories(spec))
    visible = data.draw(st.integers(1, 5))

    decision = decide(service_obs(at + TICK, visible=visible, in_flight=0, tasks=0), state, spec)

    assert decision.desired >= 1


@settings(max_examples=200)
@given(data=st.data(), spec=specs())
def test_scale_out_does_not_wait_for_any_window(data: st.DataObject, spec: ScalingSpec) -> None:
    state, at, desired = data.draw(histories(spec))
    # GIVEN a backlog that the current tasks cannot start within the latency (nor a cold start)
    slots = desired * spec.messages_per_task
    backlog = slots + math.ceil(slots * max(spec.acceptable_latency_s, 75.0) / spec.msg_processing_s) + 1

    # WHEN the very next observation shows it
    decision = decide(service_obs(at + TICK, visible=backlog, in_flight=0, tasks=desired), state, spec)

    # THEN capacity grows now
    assert decision.desired > desired or desired == spec.max_tasks


@settings(max_examples=200)
@given(data=st.data(), spec=specs())
def test_scale_in_waits_for_the_stabilization_window(data: st.DataObject, spec: ScalingSpec) -> None:
    state, at, _ = data.draw(histories(spec))
    # GIVEN a burst that made the service grow
    burst = decide(service_obs(at + TICK, visible=5000, in_flight=0, tasks=0), state, spec)
    high = burst.desired
    # WHEN the queue shrinks to a trickle within the window (never empty, so nothing settles)
    later = burst.state
    for k in range(1, int(spec.scale_in_window_s // TICK)):
        t = at + TICK + k * TICK
        decision = decide(service_obs(t, visible=1, in_flight=0, tasks=high), later, spec)
        later = decision.state
        # THEN the desired count holds the burst's recommendation
        assert decision.desired >= high
    # AND only once the window has passed does it come down
    after = decide(service_obs(at + TICK + spec.scale_in_window_s + TICK, 1, 0, high), later, spec)
    assert after.desired <= high


@st.composite
def traffic(draw: st.DrawFn) -> list[tuple[float, int, int]]:
    """(at, visible, in_flight) every 15 s, with idle stretches."""
    out = []
    at = 0.0
    for _ in range(draw(st.integers(1, 60))):
        at += TICK
        busy = draw(st.booleans())
        out.append((at, draw(st.integers(0, 40)) if busy else 0, draw(st.integers(0, 40)) if busy else 0))
    return out


@settings(max_examples=200)
@given(spec=specs(), steps=traffic())
def test_zero_only_after_the_queue_was_idle_for_idle_before_zero(
    spec: ScalingSpec, steps: list[tuple[float, int, int]]
) -> None:
    """GIVEN a service made busy, random traffic, then a long idle stretch
    THEN it goes to zero (if its minimum allows), and every time it does, nothing was queued or in flight for
    longer than ``idle_before_zero_s``."""
    spec = spec.model_copy(update={"min_tasks": 0})
    # Long enough for the idle wait, the longest keep-warm and the scale-in window to pass, wherever traffic ends.
    tail = math.ceil((spec.idle_before_zero_s + spec.keep_warm_max_s + spec.scale_in_window_s) / TICK) + 2
    end = steps[-1][0]
    timeline = [(0.0, 5, 0), *steps, *((end + TICK * k, 0, 0) for k in range(1, tail + 1))]
    state = ScalerState.initial()
    desired = 0
    last_busy = -math.inf
    zeroed = 0
    for at, visible, in_flight in timeline:
        if visible or in_flight:
            last_busy = at
        decision = decide(service_obs(at, visible, in_flight, desired), state, spec)
        if desired > 0 and decision.desired == 0:
            zeroed += 1
            assert at - last_busy > spec.idle_before_zero_s
            assert (visible, in_flight) == (0, 0)
        state, desired = decision.state, decision.desired

    assert zeroed >= 1, "the service never went to zero: the property above was never checked"
    assert desired == 0


@given(spec=specs())
def test_the_state_survives_a_json_round_trip(spec: ScalingSpec) -> None:
    decisions = run(spec, [service_obs(TICK * k, visible=10 * k, in_flight=k, tasks=k) for k in range(1, 6)])
    state = decisions[-1].state

    assert ScalerState.model_validate_json(state.model_dump_json()) == state


# -- properties: per-message mode ---------------------------------------------------------------


@settings(max_examples=300)
@given(data=st.data(), spec=specs(mode="per-message"))
def test_per_message_never_launches_twice_for_the_same_backlog(data: st.DataObject, spec: ScalingSpec) -> None:
    visible = data.draw(st.integers(1, 2000))
    first = decide(
        Observation(at=0, visible=visible, in_flight=0, delayed=0, running=0, pending=0, desired=None),
        ScalerState.initial(),
        spec,
    )
    assert first.launch == min(spec.max_tasks, math.ceil(visible / spec.messages_per_task))

    # ECS lists any part of the launched tasks as pending, some may already run and hold messages.
    state = first.state
    for k in range(1, 4):
        shown = data.draw(st.integers(0, first.launch))
        running = data.draw(st.integers(0, shown))
        holding = data.draw(st.integers(0, running * spec.messages_per_task))
        obs = Observation(
            at=k * 5.0,
            visible=max(0, visible - holding),
            in_flight=holding,
            delayed=0,
            running=running,
            pending=shown - running,
            desired=None,
        )
        again = decide(obs, state, spec)
        assert again.launch == 0
        state = again.state


@settings(max_examples=300)
@given(data=st.data(), spec=specs(mode="per-message"))
def test_per_message_launches_stay_within_max_tasks(data: st.DataObject, spec: ScalingSpec) -> None:
    state = ScalerState.initial()
    for k in range(data.draw(st.integers(1, 8))):
        running = data.draw(st.integers(0, spec.max_tasks))
        obs = Observation(
            at=k * TICK,
            visible=data.draw(counts),
            in_flight=data.draw(st.integers(0, running * spec.messages_per_task)),
            delayed=0,
            running=running,
            pending=0,
            desired=None,
        )
        decision = decide(obs, state, spec)
        assert 0 <= decision.launch <= max(0, spec.max_tasks - running)
        assert spec.min_tasks <= decision.desired <= spec.max_tasks
        launched_recently = sum(n for at, n in decision.state.launches if obs.at - at < spec.launch_grace_s)
        # What ECS may not list yet is remembered: launches within the grace period never exceed max_tasks.
        assert launched_recently <= spec.max_tasks
        state = decision.state


def test_per_message_missing_data_launches_nothing() -> None:
    spec = ScalingSpec(mode="per-message", max_tasks=10, acceptable_latency_s=60, msg_processing_s=10)
    obs = Observation(at=0, visible=5, in_flight=None, delayed=0, running=0, pending=0, desired=None)

    assert decide(obs, ScalerState.initial(), spec).launch == 0


# -- examples -----------------------------------------------------------------------------------

SPEC = ScalingSpec(mode="service", max_tasks=100, acceptable_latency_s=600, msg_processing_s=10)


def test_target_backlog_per_task_is_latency_over_processing_time() -> None:
    assert target_backlog_per_task(SPEC) == 60


def test_one_message_at_zero_tasks_scales_out_even_when_the_target_is_one() -> None:
    # GIVEN Copilot's failing case (#3376): target backlog per task of 1, one message, no task
    spec = ScalingSpec(mode="service", max_tasks=5, acceptable_latency_s=10, msg_processing_s=10)
    # WHEN the Scaler runs
    decision = decide(service_obs(0, visible=1, in_flight=0, tasks=0), ScalerState.initial(), spec)
    # THEN a task is requested at once
    assert (decision.desired, decision.reason) == (1, "scale-out")


def test_a_burst_gets_enough_tasks_to_drain_within_the_latency() -> None:
    # GIVEN 4800 queued messages of 10 s each and 600 s of acceptable latency
    decision = decide(service_obs(615, visible=4800, in_flight=0, tasks=0), ScalerState.initial(), SPEC)
    # THEN enough tasks to work them off in the time left after a cold start (~525 s), at once
    assert decision.desired >= math.ceil(4800 * 10 / 525)
    assert decision.reason == "scale-out"


def test_busy_tasks_are_never_scaled_in_even_with_an_empty_queue() -> None:
    # GIVEN 8 tasks, all busy, nothing queued, for longer than every window
    steps = [service_obs(TICK * k, visible=0, in_flight=8, tasks=8) for k in range(1, 60)]
    # THEN the desired count stays at 8
    assert {d.desired for d in run(SPEC, steps)} == {8}


def test_an_idle_service_goes_to_zero_only_after_idle_before_zero() -> None:
    # GIVEN three tasks that finished their work at t=15
    steps = [service_obs(TICK, visible=0, in_flight=3, tasks=3)]
    steps += [service_obs(TICK * k, visible=0, in_flight=0, tasks=3) for k in range(2, 14)]
    decisions = run(SPEC, steps)
    zero_at = next(s.at for s, d in zip(steps, decisions, strict=True) if d.desired == 0)
    # THEN the first zero comes idle_before_zero_s (120 s) after the queue went idle at t=30
    assert zero_at - 2 * TICK >= SPEC.idle_before_zero_s
    assert decisions[-1].reason in {"scale-to-zero", "steady"}


def test_a_short_latency_keeps_the_last_task_warm_between_messages() -> None:
    # GIVEN a 30 s latency, shorter than any Fargate cold start, and one message a minute
    spec = ScalingSpec(mode="service", max_tasks=5, acceptable_latency_s=30, msg_processing_s=5)
    steps = []
    for k in range(1, 40):
        steps.append(service_obs(TICK * k, visible=1 if k % 4 == 0 else 0, in_flight=0, tasks=1))
    # THEN the service never drops to zero while the messages keep coming
    assert min(d.desired for d in run(spec, steps)[4:]) == 1


def test_a_failed_queue_read_holds_the_current_count() -> None:
    decisions = run(SPEC, [service_obs(TICK, visible=3000, in_flight=0, tasks=0)])
    held = decide(
        Observation(at=2 * TICK, visible=None, in_flight=None, delayed=None, running=60, pending=0, desired=60),
        decisions[-1].state,
        SPEC,
    )
    assert (held.desired, held.reason) == (60, "hold-missing-data")


def test_delayed_messages_count_as_backlog() -> None:
    only_delayed = decide(service_obs(0, visible=0, in_flight=0, tasks=0, delayed=5), ScalerState.initial(), SPEC)
    assert only_delayed.desired >= 1


def test_per_message_launches_per_batch_and_remembers_unlisted_launches() -> None:
    spec = ScalingSpec(
        mode="per-message", max_tasks=10, acceptable_latency_s=60, msg_processing_s=10, messages_per_task=4
    )
    # GIVEN 10 visible messages and no task: WHEN the Scaler runs THEN 3 batches are launched
    first = decide(
        Observation(at=0, visible=10, in_flight=0, delayed=0, running=0, pending=0, desired=None),
        ScalerState.initial(),
        spec,
    )
    assert (first.launch, first.reason) == (3, "launch")
    # AND 15 s later ECS still lists none of them: nothing is launched again
    second = decide(
        Observation(at=15, visible=10, in_flight=0, delayed=0, running=0, pending=0, desired=None),
        first.state,
        spec,
    )
    assert second.launch == 0
    # AND once the grace period is over without a trace of them, the backlog is launched for again
    third = decide(
        Observation(at=90, visible=10, in_flight=0, delayed=0, running=0, pending=0, desired=None),
        second.state,
        spec,
    )
    assert third.launch == 3


def test_one_model_of_a_jobs_scaling_settings() -> None:
    """The registry's scaling settings and decide()'s spec are one model: same defaults, same bounds."""
    from taskrunner.domain.jobs import JobSpec
    from taskrunner.domain.scaling import ScalingParams

    assert JobSpec.model_fields["scaling"].annotation is ScalingParams
    assert issubclass(ScalingSpec, ScalingParams)
    for name, field in ScalingParams.model_fields.items():
        assert ScalingSpec.model_fields[name].default == field.default, name
        assert ScalingSpec.model_fields[name].metadata == field.metadata, name
