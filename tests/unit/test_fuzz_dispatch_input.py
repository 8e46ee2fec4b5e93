"""Fuzz requests_from: whatever lands on the dispatch queue, the answer is requests or a PermanentError.

Anything else (a TypeError, a RecursionError, a pydantic error) escapes the handler's classification:
the batch retries the message until SQS moves it to the DLQ with no reason attached, and a hostile
producer can keep a Dispatcher busy. Three families of bodies, 5,000 examples each:

* random JSON values, as objects or as text;
* valid envelopes and bare events of every trigger, mutated (fields dropped, replaced by junk of the
  wrong type, unknown fields and triggers, unknown job names, invalid datetimes, nested junk);
* hostile text: huge strings, deeply nested arrays, oversized integers, lone surrogates, truncated JSON.
"""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskrunner.domain.errors import PermanentError, UnknownJob
from taskrunner.domain.runs import idempotency_key, run_detail, run_id_for
from taskrunner.domain.triggers import DispatchRequest, Trigger, requests_from
from tests.conftest import load_event
from tests.unit.fakes import DATA_BUCKET, FakeRegistry, eventbridge_event, job_spec, s3_event

FUZZ = settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

REGISTRY = FakeRegistry(
    job_spec(name="thumbnails", s3_bucket=DATA_BUCKET, s3_prefix="uploads/", s3_suffix=".jpg"),
    job_spec(name="everything-in-bucket", s3_bucket=DATA_BUCKET),
    job_spec(name="order-audit", event_pattern={"source": ["com.example.orders"], "detail-type": ["OrderPlaced"]}),
    job_spec(
        name="rich-pattern",
        event_pattern={
            "detail": {
                "total": [{"numeric": [">", 0, "<=", 1e9]}, {"anything-but": [0, 13]}],
                "currency": [{"exists": True}, {"equals-ignore-case": "eur"}],
                "$or": [{"order_id": [{"prefix": "o-"}]}, {"key": [{"wildcard": "*.csv"}, {"suffix": ".tsv"}]}],
                "tags": [{"anything-but": {"prefix": "internal"}}, {"exists": False}],
            }
        },
    ),
    job_spec(name="nightly-report"),
)

TEMPLATES: list[dict[str, Any]] = [
    load_event("schedule-tick.json"),
    load_event("manual-run.json"),
    load_event("s3-object-created.json"),
    load_event("order-placed.json"),
    {"job": "thumbnails", "trigger": "s3", "event": s3_event()},
    {"job": "order-audit", "trigger": "event", "event": eventbridge_event()},
    load_event("manual-run.json") | {"run_id": "0123456789abcdef0123456789", "attempt": 2},  # a retry
    s3_event("uploads/a/b.jpg"),
    eventbridge_event(detail={"total": 5, "currency": "EUR", "key": "x.csv", "tags": ["a", "internal-b"]}),
]

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
#: Keys the parser looks at, mixed with arbitrary ones, so random objects reach past the first check.
ENVELOPE_KEYS = ["job", "trigger", "scheduled_at", "event", "request_id", "env", "run_id", "attempt"]
EVENT_KEYS = ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]
KEYS = st.sampled_from([*ENVELOPE_KEYS, *EVENT_KEYS]) | st.text(max_size=12)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=8,
)

FIELD_JUNK = st.one_of(
    JSON_VALUES,
    st.sampled_from([t.value for t in Trigger]),
    st.text(max_size=20).filter(lambda t: t not in {tr.value for tr in Trigger}),  # unknown triggers
    st.sampled_from(["no-such-job", "thumbnails", "Thumb Nails", "", "a" * 65, "nightly-report"]),  # job names
    st.sampled_from(
        [
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "24:00",
            "0000-00-00T00:00:00Z",
            "9999-12-31T23:59:59.999999-23:59",
            "2026-11-26T05:00:00+25:00",
            "yesterday",
            "1795680000",
            "",
        ]
    ),  # invalid or odd datetimes
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.dictionaries(st.sampled_from(["TASKRUNNER_X", "OK", "1BAD", "A-B", "PATH"]), JSON_SCALARS, max_size=3),
)


def _slots(value: Any, found: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key-or-index) inside a JSON value, so a mutation can hit any depth."""
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((value, key))
            _slots(child, found)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.append((value, index))
            _slots(child, found)
    return found


@st.composite
def mutated_bodies(draw: st.DrawFn) -> Any:
    body = copy.deepcopy(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        slots = _slots(body, [])
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        match draw(st.sampled_from(["drop", "replace", "replace", "add", "nest"])):
            case "drop" if isinstance(container, dict):
                del container[key]
            case "add" if isinstance(container, dict):
                container[draw(st.text(max_size=12))] = draw(FIELD_JUNK)
            case "nest":
                container[key] = [container[key]] if draw(st.booleans()) else {"value": container[key]}
            case _:
                container[key] = draw(FIELD_JUNK)
    return body


def as_delivered(draw: st.DrawFn, body: Any) -> Any:
    """The body as a queue message (JSON text) or as a direct invocation payload (an object)."""
    if isinstance(body, dict) and draw(st.booleans()):
        return body
    return json.dumps(body, ensure_ascii=draw(st.booleans()))


@st.composite
def random_json_bodies(draw: st.DrawFn) -> Any:
    objects = st.dictionaries(KEYS, JSON_VALUES, max_size=5)
    return as_delivered(draw, draw(objects if draw(st.integers(0, 9)) < 8 else JSON_VALUES))


@st.composite
def mutated_deliveries(draw: st.DrawFn) -> Any:
    return as_delivered(draw, draw(mutated_bodies()))


def _deep_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def _deep_dict(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["x"] = {}
        node = node["x"]
    return root


class Hostile:
    """A hostile body with a short repr, so a falsifying example prints its recipe, not 300 KB of brackets."""

    def __init__(self, recipe: str, body: Any) -> None:
        self.recipe = recipe
        self.body = body

    def __repr__(self) -> str:
        return f"Hostile({self.recipe})"


@st.composite
def hostile_bodies(draw: st.DrawFn) -> Hostile:
    template = draw(st.sampled_from(TEMPLATES))
    text = json.dumps(template)
    size = draw(st.integers(min_value=1, max_value=300_000))
    depth = draw(st.integers(min_value=1, max_value=150_000))
    digits = draw(st.integers(min_value=1, max_value=20_000))
    kind = draw(
        st.sampled_from(
            [
                "huge-string-field",
                "huge-raw-text",
                "deep-array-text",
                "deep-field-text",
                "deep-dict-object",
                "big-int",
                "surrogate",
                "truncated",
                "garbage-text",
                "control-chars",
            ]
        )
    )
    match kind:
        case "huge-string-field":
            body = copy.deepcopy(template)
            key = draw(st.sampled_from(sorted(body)))
            char = draw(st.characters(exclude_categories=("Cs",)))
            body[key] = char * size
            return Hostile(f"{key}={char!r}*{size}", as_delivered(draw, body))
        case "huge-raw-text":
            char = draw(st.characters())
            return Hostile(f"text {char!r}*{size}", char * size)
        case "deep-array-text":
            return Hostile(f"[]*{depth}", _deep_list(depth))
        case "deep-field-text":
            key = draw(st.sampled_from(["job", "event", "env", "detail", "scheduled_at"]))
            return Hostile(f"{key}=[]*{depth}", text[:-1] + f', "{key}": ' + _deep_list(depth) + "}")
        case "deep-dict-object":
            body = copy.deepcopy(template)
            key = draw(st.sampled_from([*sorted(body), "extra"]))
            body[key] = _deep_dict(min(depth, 5_000))
            return Hostile(f"object {key}={{x:}}*{min(depth, 5_000)}", body)
        case "big-int":
            key = draw(st.sampled_from(["attempt", "scheduled_at", "job", "size", "time"]))
            sign = "-" if draw(st.booleans()) else ""
            return Hostile(f"{key}={sign}1e{digits}", text[:-1] + f', "{key}": {sign}1' + "0" * digits + "}")
        case "surrogate":
            # JSON escapes of lone surrogates are valid JSON text but not encodable as UTF-8.
            escape = draw(st.sampled_from(["\\ud800", "\\udfff", "\\udc80x", "\\ud83d"]))
            strings = sorted({text[i : j + 1] for i, j in _string_spans(text)} - {'""'})
            target = draw(st.sampled_from(strings))
            return Hostile(f"{target}+{escape}", text.replace(target, target[:-1] + escape + '"', 1))
        case "truncated":
            cut = draw(st.integers(min_value=0, max_value=len(text) - 1))
            return Hostile(f"{text[:cut]!r}", text[:cut])
        case "garbage-text":
            garbage = draw(st.text(max_size=200))
            return Hostile(repr(garbage), garbage)
        case _:
            char = draw(st.sampled_from(["\x00", "\x1f", "\u2028", "\ufeff"]))
            return Hostile(f"first space → {char!r}", text.replace(" ", char, 1))


def _string_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each JSON string literal (quote to quote) in ASCII JSON text."""
    spans, start, escaped = [], None, False
    for index, char in enumerate(text):
        if start is not None and char == "\\" and not escaped:
            escaped = True
            continue
        if char == '"' and not escaped:
            if start is None:
                start = index
            else:
                spans.append((start, index))
                start = None
        escaped = False
    return spans


def check(body: Any) -> None:
    """The property: valid, usable requests, or a PermanentError with a reason. Nothing else."""
    rejection: PermanentError | None = None
    requests: list[DispatchRequest] = []
    try:
        requests = requests_from(body, REGISTRY.all)
    except PermanentError as exc:
        rejection = exc
    if rejection is not None:
        assert str(rejection).strip(), "a PermanentError must say why"
        return
    assert requests, "requests_from returned nothing and raised nothing"
    for request in requests:
        assert isinstance(request, DispatchRequest)
        # What the Dispatcher does with every request before it touches AWS must work too.
        run_id_for(idempotency_key(request))
        run_detail(request)
        request.model_dump_json()  # the launch serialises the event into the task's environment
        with contextlib.suppress(UnknownJob):
            REGISTRY.get(request.job)


@FUZZ
@given(body=random_json_bodies())
def test_fuzz_random_json(body: Any) -> None:
    check(body)


@FUZZ
@given(body=mutated_deliveries())
def test_fuzz_mutated_envelopes_and_events(body: Any) -> None:
    check(body)


@FUZZ
@given(case=hostile_bodies())
def test_fuzz_hostile_bodies(case: Hostile) -> None:
    check(case.body)


def test_every_template_is_accepted_unmutated():
    """The mutations start from bodies that parse, so a rejection is caused by the mutation."""
    for template in TEMPLATES:
        assert requests_from(template, REGISTRY.all)
        assert requests_from(json.dumps(template), REGISTRY.all)
