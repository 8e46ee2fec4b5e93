"""patterns.matches against EventBridge's documented content filtering.

The cross-checks quote the examples of the EventBridge user guide ("Content filtering in Amazon
EventBridge event patterns" and "Comparison operators for use in event patterns"), so a divergence
from EventBridge shows up as a failing example, not as a job that silently never runs.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskrunner.domain.patterns import matches, validate_pattern
from tests.conftest import load_event

ORDER = load_event("order-placed.json")
S3 = load_event("s3-object-created.json")


def check(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    assert matches(pattern, event) is expected, f"{pattern} vs {event}"


# --------------------------------------------------------------------------- exact values


def test_exact_value():
    check({"source": ["com.example.orders"]}, ORDER, True)
    check({"source": ["com.example.billing"]}, ORDER, False)


def test_values_in_a_list_are_alternatives():
    check({"source": ["aws.ec2", "com.example.orders"]}, ORDER, True)


def test_fields_are_all_required():
    check({"source": ["com.example.orders"], "detail-type": ["OrderPlaced"]}, ORDER, True)
    check({"source": ["com.example.orders"], "detail-type": ["OrderCancelled"]}, ORDER, False)


def test_exact_match_is_case_sensitive():
    check({"source": ["COM.EXAMPLE.ORDERS"]}, ORDER, False)


def test_missing_field_does_not_match():
    check({"detail": {"coupon": ["SUMMER"]}}, ORDER, False)


def test_empty_pattern_is_invalid_and_matches_nothing():
    """EventBridge refuses ``{}`` ("Empty objects are not allowed"), so no event can arrive through it."""
    check({}, ORDER, False)
    assert validate_pattern({}) == ["pattern: an empty object is not a pattern (EventBridge refuses it)"]


@pytest.mark.parametrize(("value", "expected"), [(1250.0, True), (1250, True), ("1250", False), (999, False)])
def test_exact_number(value, expected):
    check({"detail": {"total": [1250]}}, {"detail": {"total": value}}, expected)


def test_null_and_empty_string_values():
    check({"detail": {"user": [None]}}, {"detail": {"user": None}}, True)
    check({"detail": {"user": [None]}}, {"detail": {}}, False)
    check({"detail": {"name": [""]}}, {"detail": {"name": ""}}, True)
    check({"detail": {"name": [""]}}, {"detail": {"name": None}}, False)


def test_booleans():
    check({"detail": {"flag": [True]}}, {"detail": {"flag": True}}, True)
    check({"detail": {"flag": [True]}}, {"detail": {"flag": False}}, False)


@pytest.mark.parametrize(("pattern_value", "event_value"), [(True, 1), (0, False)])
def test_booleans_and_numbers_are_different_json_values(pattern_value, event_value):
    """EventBridge compares JSON values: ``true`` is not the number 1 (Python's ``True == 1`` is)."""
    check({"detail": {"flag": [pattern_value]}}, {"detail": {"flag": event_value}}, False)


# --------------------------------------------------------------------------- nesting and arrays


def test_nested_objects():
    check({"detail": {"bucket": {"name": ["taskrunner-example-data"]}}}, S3, True)
    check({"detail": {"bucket": {"name": ["other"]}}}, S3, False)


def test_pattern_object_against_a_scalar_does_not_match():
    check({"detail": {"currency": {"code": ["EUR"]}}}, ORDER, False)


def test_array_in_the_event_matches_if_any_element_matches():
    """Docs: if the value in the event is an array, the pattern matches if the intersection is non-empty."""
    event = {"resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f", "arn:aws:ec2:::image/ami-1"]}
    check({"resources": ["arn:aws:ec2:::image/ami-1"]}, event, True)
    check({"resources": ["arn:aws:ec2:::image/ami-2"]}, event, False)
    check({"resources": [{"prefix": "arn:aws:ec2:us-east-1"}]}, event, True)


def test_empty_array_in_the_event_matches_nothing():
    check({"resources": ["x"]}, {"resources": []}, False)


def test_s3_sample_matches_the_rule_job_yaml_writes():
    """The rule a job with an S3 trigger gets: Object Created on the data bucket under its prefix."""
    pattern = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": ["taskrunner-example-data"]}, "object": {"key": [{"prefix": "uploads/images/"}]}},
    }
    check(pattern, S3, True)
    check(pattern | {"detail-type": ["Object Deleted"]}, S3, False)


# --------------------------------------------------------------------------- prefix, suffix, case


def test_prefix():
    """Docs example: ``"time": [{"prefix": "2017-10-02"}]`` matches ``"2017-10-02T18:43:48Z"``."""
    check({"time": [{"prefix": "2017-10-02"}]}, {"time": "2017-10-02T18:43:48Z"}, True)
    check({"time": [{"prefix": "2017-10-03"}]}, {"time": "2017-10-02T18:43:48Z"}, False)


def test_prefix_only_applies_to_strings():
    check({"detail": {"total": [{"prefix": "12"}]}}, ORDER, False)


def test_suffix():
    """Docs example: ``"FileName": [{"suffix": ".png"}]``."""
    check({"FileName": [{"suffix": ".png"}]}, {"FileName": "image.png"}, True)
    check({"FileName": [{"suffix": ".png"}]}, {"FileName": "image.jpg"}, False)


def test_equals_ignore_case():
    """Docs example: ``"name": [{"equals-ignore-case": "alice"}]`` matches "Alice"."""
    check({"name": [{"equals-ignore-case": "alice"}]}, {"name": "Alice"}, True)
    check({"name": [{"equals-ignore-case": "alice"}]}, {"name": "Alicia"}, False)


def test_prefix_ignoring_case():
    """Docs: ``{"service": [{"prefix": {"equals-ignore-case": "eventb"}}]}`` matches "EventBridge"."""
    check({"service": [{"prefix": {"equals-ignore-case": "eventb"}}]}, {"service": "EventBridge"}, True)
    check({"service": [{"prefix": {"equals-ignore-case": "eventb"}}]}, {"service": "Lambda"}, False)


def test_suffix_ignoring_case():
    """Docs: ``{"service": [{"suffix": {"equals-ignore-case": "tbridge"}}]}`` matches "EventBRIDGE"."""
    check({"service": [{"suffix": {"equals-ignore-case": "tbridge"}}]}, {"service": "EventBRIDGE"}, True)
    check({"service": [{"suffix": {"equals-ignore-case": "tbridge"}}]}, {"service": "Lambda"}, False)


# --------------------------------------------------------------------------- anything-but


def test_anything_but_a_value():
    """Docs example: ``"state": [{"anything-but": "initializing"}]``."""
    check({"state": [{"anything-but": "initializing"}]}, {"state": "running"}, True)
    check({"state": [{"anything-but": "initializing"}]}, {"state": "initializing"}, False)


def test_anything_but_a_list():
    pattern = {"state": [{"anything-but": ["stopped", "overloaded"]}]}
    check(pattern, {"state": "running"}, True)
    check(pattern, {"state": "stopped"}, False)
    check(pattern, {"state": "overloaded"}, False)


def test_anything_but_numbers():
    check({"x-limit": [{"anything-but": [100, 200, 300]}]}, {"x-limit": 150}, True)
    check({"x-limit": [{"anything-but": [100, 200, 300]}]}, {"x-limit": 200}, False)


def test_anything_but_a_prefix():
    """Docs example: ``"Region": [{"anything-but": {"prefix": "us-"}}]``."""
    check({"Region": [{"anything-but": {"prefix": "us-"}}]}, {"Region": "eu-west-1"}, True)
    check({"Region": [{"anything-but": {"prefix": "us-"}}]}, {"Region": "us-east-1"}, False)


def test_anything_but_a_suffix_and_ignoring_case():
    check({"FileName": [{"anything-but": {"suffix": ".png"}}]}, {"FileName": "a.jpg"}, True)
    check({"FileName": [{"anything-but": {"suffix": ".png"}}]}, {"FileName": "a.png"}, False)
    check({"state": [{"anything-but": {"equals-ignore-case": "initializing"}}]}, {"state": "INITIALIZING"}, False)
    check({"state": [{"anything-but": {"equals-ignore-case": "initializing"}}]}, {"state": "running"}, True)


def test_anything_but_a_wildcard():
    """Docs example: ``"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]``."""
    check({"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]}, {"FilePath": "/usr/bin/ls"}, True)
    check({"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]}, {"FilePath": "/usr/lib/x"}, False)


def test_anything_but_needs_the_field():
    check({"state": [{"anything-but": "initializing"}]}, {"other": 1}, False)


# --------------------------------------------------------------------------- numeric


@pytest.mark.parametrize(
    ("value", "expected"), [(0, False), (0.5, True), (5, True), (5.0001, False), (-1, False), ("3", False)]
)
def test_numeric_range(value, expected):
    """Docs example: ``"c-count": [{"numeric": [">", 0, "<=", 5]}]``."""
    check({"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}]}}, {"detail": {"c-count": value}}, expected)


@pytest.mark.parametrize(
    ("op", "bound", "value", "expected"),
    [
        ("=", 300, 300, True),
        ("=", 300, 301, False),
        (">=", 300, 300, True),
        (">", 300, 300, False),
        ("<", 300, 299.9, True),
        ("<=", 300, 300.1, False),
    ],
)
def test_numeric_operators(op, bound, value, expected):
    check({"n": [{"numeric": [op, bound]}]}, {"n": value}, expected)


def test_numeric_ignores_booleans():
    check({"n": [{"numeric": [">", 0]}]}, {"n": True}, False)


def test_numeric_against_the_sample_order():
    check({"detail": {"total": [{"numeric": [">=", 1000, "<", 5000]}]}}, ORDER, True)


# --------------------------------------------------------------------------- exists


def test_exists_true():
    """Docs example: ``"detail": {"c-count": [{"exists": true}]}``."""
    check({"detail": {"order_id": [{"exists": True}]}}, ORDER, True)
    check({"detail": {"coupon": [{"exists": True}]}}, ORDER, False)


def test_exists_false():
    check({"detail": {"coupon": [{"exists": False}]}}, ORDER, True)
    check({"detail": {"order_id": [{"exists": False}]}}, ORDER, False)


def test_exists_true_with_a_null_value():
    check({"detail": {"user": [{"exists": True}]}}, {"detail": {"user": None}}, True)


def test_exists_or_a_value():
    pattern = {"detail": {"coupon": [{"exists": False}, "SUMMER"]}}
    check(pattern, {"detail": {}}, True)
    check(pattern, {"detail": {"coupon": "SUMMER"}}, True)
    check(pattern, {"detail": {"coupon": "WINTER"}}, False)


# --------------------------------------------------------------------------- wildcard


def test_wildcard():
    """Docs example: ``"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]``."""
    pattern = {"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]}
    check(pattern, {"EventBusArn": "arn:aws:events:us-east-1:123456789012:event-bus/default"}, True)
    check(pattern, {"EventBusArn": "arn:aws:events:eu-west-1:123456789012:event-bus/default"}, False)


def test_wildcard_in_the_middle_and_at_the_ends():
    check({"key": [{"wildcard": "dir/*.png"}]}, {"key": "dir/a/b.png"}, True)
    check({"key": [{"wildcard": "*Title*"}]}, {"key": "The Title Here"}, True)
    check({"key": [{"wildcard": "*Title*"}]}, {"key": "The title here"}, False)


def test_wildcard_only_applies_to_strings():
    check({"n": [{"wildcard": "*"}]}, {"n": 5}, False)


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("file?.txt", "file1.txt", False),
        ("file?.txt", "file?.txt", True),
        ("img[1].png", "img1.png", False),
        ("img[1].png", "img[1].png", True),
        ("uploads/[a-z]*", "uploads/x.jpg", False),
    ],
)
def test_wildcard_star_is_the_only_special_character(pattern, value, expected):
    """EventBridge's wildcard filter knows one special character, ``*``; ``?`` and ``[...]`` are literal
    (S3 keys may contain both). A shell-style glob reads them as wildcards."""
    check({"key": [{"wildcard": pattern}]}, {"key": value}, expected)


# --------------------------------------------------------------------------- $or


def test_or_at_the_top_level():
    """Docs example: ``"$or": [{"detail-type": [...]}, {"source": [...]}]``."""
    pattern = {"$or": [{"detail-type": ["OrderCancelled"]}, {"source": ["com.example.orders"]}]}
    check(pattern, ORDER, True)
    check({"$or": [{"detail-type": ["OrderCancelled"]}, {"source": ["com.example.billing"]}]}, ORDER, False)


def test_or_combined_with_other_fields_is_and_ed():
    pattern = {"source": ["com.example.orders"], "$or": [{"detail": {"currency": ["USD"]}}, {"region": ["eu-west-1"]}]}
    check(pattern, ORDER, False)
    check(pattern | {"$or": [{"detail": {"currency": ["EUR"]}}, {"region": ["eu-west-1"]}]}, ORDER, True)


def test_or_nested_inside_detail():
    pattern = {"detail": {"$or": [{"total": [{"numeric": [">", 5000]}]}, {"currency": ["EUR"]}]}}
    check(pattern, ORDER, True)
    check(pattern, {"detail": {"total": 1, "currency": "USD"}}, False)


def test_matching_never_mutates_its_inputs():
    pattern = {"detail": {"total": [{"numeric": [">", 0]}], "$or": [{"currency": ["EUR"]}]}}
    event = load_event("order-placed.json")
    before = (repr(pattern), repr(event))
    matches(pattern, event)
    assert (repr(pattern), repr(event)) == before


# --------------------------------------------------------------------------- event-ruler's details


def test_exact_numbers_compare_as_doubles():
    """event-ruler adds a numeric-equals matcher for every number in a pattern, so 300 matches 300.0."""
    check({"n": [300]}, {"n": 300.0}, True)
    check({"n": [300.0]}, {"n": 300}, True)
    check({"n": [0.1]}, {"n": 0.1}, True)


def test_numbers_no_double_holds_only_equal_themselves():
    """2**53 + 1 has no exact double: event-ruler keeps it as text, so only the same number matches."""
    big = 2**53 + 1
    check({"n": [big]}, {"n": big}, True)
    check({"n": [big]}, {"n": float(big)}, False)
    check({"n": [{"numeric": [">", 0]}]}, {"n": big}, False)
    check({"n": [{"anything-but": [1]}]}, {"n": big}, True)
    # 2**60 is a double, but not the one Java prints back (1.15292150460684698E18): not comparable either.
    check({"n": [{"numeric": [">", 0]}]}, {"n": 2**60}, False)
    check({"n": [{"numeric": [">", 0]}]}, {"n": 2**52}, True)


def test_anything_but_matches_values_of_other_types():
    """event-ruler's anything-but excludes only what it lists: a number, null or true is anything but "x"."""
    for value in (5, None, True, ["x", 7]):
        check({"f": [{"anything-but": "x"}]}, {"f": value}, True)
    check({"f": [{"anything-but": [5]}]}, {"f": "5"}, True)
    check({"f": [{"anything-but": [5]}]}, {"f": 5.0}, False)
    check({"f": [{"anything-but": {"prefix": "x"}}]}, {"f": 5}, True)


def test_an_exact_ip_address_matches_any_spelling_of_it():
    """event-ruler turns a pattern string that is an IP address into an address range of one."""
    check({"ip": ["2001:db8::1"]}, {"ip": "2001:DB8:0:0:0:0:0:1"}, True)
    check({"ip": ["10.0.0.1"]}, {"ip": "10.0.0.1"}, True)
    check({"ip": ["10.0.0.1"]}, {"ip": "::ffff:10.0.0.1"}, False)  # dotted IPv6 is not an address to event-ruler
    check({"ip": ["10.0.0.1"]}, {"ip": "::ffff:a00:1"}, True)  # an IPv4-mapped address is the IPv4 one
    check({"ip": ["12:30"]}, {"ip": "12:30"}, True)  # looks like IPv6, is not: compared as text


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [("strasse", "STRASSE", True), ("straße", "STRASSE", True), ("straße", "strasse", False), ("é", "É", True)],
)
def test_equals_ignore_case_per_character(pattern, value, expected):
    """Each pattern character matches its lower or its upper case, as event-ruler's parser builds it."""
    check({"s": [{"equals-ignore-case": pattern}]}, {"s": value}, expected)


def test_later_of_two_same_named_leaves_wins_across_or():
    """An $or alternative naming a sibling's field overrides it in that alternative's rule."""
    pattern = {"source": ["a"], "$or": [{"source": ["b"]}, {"x": [1]}]}
    check(pattern, {"source": "b"}, True)
    check(pattern, {"source": "a"}, False)
    check(pattern, {"source": "a", "x": 1}, True)
    reordered = {"$or": [{"source": ["b"]}, {"x": [1]}], "source": ["a"]}
    check(reordered, {"source": "a"}, True)
    check(reordered, {"source": "b"}, False)


def test_a_distributed_or_judges_absence_per_alternative():
    """items.a sorts before items.b (absence judged in the matched element), items.c after (across all)."""
    pattern = {"items": {"b": [{"exists": False}]}, "$or": [{"items": {"a": [1]}}, {"items": {"c": [2]}}]}
    check(pattern, {"items": [{"a": 1}, {"b": 1}]}, True)
    check(pattern, {"items": [{"c": 2}, {"b": 1}]}, False)
    check(pattern, {"items": [{"c": 2}, {"d": 1}]}, True)


def test_nested_pattern_against_a_non_object_sees_an_empty_object():
    check({"detail": {"x": [{"exists": False}]}}, {"detail": "text"}, True)
    check({"detail": {"x": [{"exists": False}]}}, {"detail": [1, 2]}, True)
    check({"detail": {"x": [{"exists": True}]}}, {"detail": [1, 2]}, False)


def test_the_dispatcher_example_from_issue_9():
    pattern = {"detail": {"containers": {"exitCode": [{"anything-but": 0}]}}}
    check(pattern, {"detail": {"containers": [{"exitCode": 1}]}}, True)
    check(pattern, {"detail": {"containers": [{"exitCode": 0}]}}, False)
    check(pattern, {"detail": {"containers": [{"name": "app"}]}}, False)


def test_a_non_object_event_matches_nothing():
    check({"source": ["x"]}, ["x"], False)  # type: ignore[arg-type]


def test_an_invalid_pattern_matches_nothing():
    check({"source": "aws.ec2"}, {"source": "aws.ec2"}, False)
    check({"source": [{"prefix": 5}]}, {"source": "5"}, False)


# --------------------------------------------------------------------------- validator messages


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ({"detail": {"total": [{"numeric": [">"]}]}}, "detail.total: numeric needs an operator and a number"),
        ({"source": "aws.ec2"}, "source: a pattern's values must be arrays (or objects to nest), got a string"),
        ({"source": [{"contains": "x"}]}, 'source: unknown operator "contains"'),
        ({"ip": [{"cidr": "10.0.0.0/x"}]}, 'ip: malformed cidr "10.0.0.0/x": the prefix length'),
        ({"detail": {"$or": [{"a": ["x"]}]}}, "detail.$or: $or needs at least two alternatives"),
        ({"$or": [{"a": {"b": []}}, {"c": ["d"]}]}, "$or[0].a.b: an empty array matches nothing"),
        ("source", "a pattern must be a JSON object, got a string"),
        (None, "a pattern must be a JSON object, got null"),
    ],
)
def test_each_problem_names_where_and_what(pattern, problem):
    problems = validate_pattern(pattern)
    assert any(p.startswith(problem) for p in problems), problems


def test_every_mistake_is_reported():
    problems = validate_pattern({"a": "x", "b": [], "c": [{"exists": 1}], "d": {"e": [{"numeric": ["<", 1, ">", 0]}]}})
    assert [p.split(":")[0] for p in problems] == ["a", "b", "c", "d.e"]


def test_operators_may_be_a_field_named_or():
    """event-ruler reads an "$or" that is not an Or as an ordinary field; valid if its values are."""
    assert validate_pattern({"$or": [{"numeric": [">", 0]}, {"cidr": "10.0.0.0/8"}]}) == []
    check({"$or": [{"numeric": [">", 0]}, {"cidr": "10.0.0.0/8"}]}, {"$or": "10.1.2.3"}, True)


# --------------------------------------------------------------------------- cost


def test_wildcards_do_not_backtrack():
    """A regex would take exponential time on this; the segment search is linear."""
    pattern = {"k": [{"wildcard": "*a" * 30 + "*b"}]}
    started = time.perf_counter()
    check(pattern, {"k": "a" * 50_000}, False)
    assert time.perf_counter() - started < 0.5


def test_nested_or_is_not_expanded():
    """20 nested $or groups would be 2**20 rules if expanded; evaluated lazily they cost their size."""
    pattern: dict[str, Any] = {"leaf": ["x"]}
    for depth in range(20):
        pattern = {"$or": [pattern, {f"miss{depth}": ["y"]}]}
    event = {"leaf": "no"}
    started = time.perf_counter()
    check(pattern, event, False)
    check(pattern, {"leaf": "x"}, True)
    assert time.perf_counter() - started < 0.5


def test_large_arrays_of_objects_are_linear():
    pattern = {"items": {"a": [1], "b": [{"exists": False}], "c": [2]}}
    event = {"items": [{"a": 1, "b": 1, "c": 2}] * 20_000 + [{"a": 1, "c": 2}]}
    started = time.perf_counter()
    check(pattern, event, True)
    assert time.perf_counter() - started < 1.0


def test_deeply_nested_events_do_not_recurse():
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    check({"a": [1]}, {"a": deep}, True)
    check({"a": {"b": [1]}}, {"a": deep}, False)


def _reference_wildcard(wildcard: str) -> str | None:
    """A regex for an EventBridge wildcard, or None where event-ruler refuses it."""
    out, i, after_star = [], 0, False
    while i < len(wildcard):
        char = wildcard[i]
        if char == "*":
            if after_star:
                return None
            out.append(".*")
        elif char == "\\":
            if i + 1 == len(wildcard) or wildcard[i + 1] not in "*\\":
                return None
            i += 1
            out.append(re.escape(wildcard[i]))
        else:
            out.append(re.escape(char))
        after_star = char == "*"
        i += 1
    return "".join(out)


@given(st.text(alphabet="ab*\\", max_size=12), st.text(alphabet="ab*\\", max_size=12))
@settings(max_examples=2000, deadline=None)
def test_wildcard_agrees_with_a_reference_regex(wildcard, value):
    """Star matches any run; backslash escapes star or backslash; anything else, or "**", is refused."""
    regex = _reference_wildcard(wildcard)
    pattern = {"k": [{"wildcard": wildcard}]}
    assert (validate_pattern(pattern) == []) is (regex is not None)
    expected = regex is not None and re.fullmatch(regex, value, re.DOTALL) is not None
    check(pattern, {"k": value}, expected)
