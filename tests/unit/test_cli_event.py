"""taskrunner event: events built from a job's pattern match it (the Dispatcher's matcher decides)."""

from __future__ import annotations

import pytest

from taskrunner.cli.event import CannotSynthesize, pattern_event, s3_event
from taskrunner.domain.patterns import matches


@pytest.mark.parametrize(
    "pattern",
    [
        {
            "source": ["com.example.orders"],
            "detail-type": ["OrderPlaced"],
            "detail": {"total": [{"numeric": [">=", 1000]}]},
        },
        {
            "source": ["aws.s3"],
            "detail": {"object": {"key": [{"prefix": "uploads/"}]}, "size": [{"numeric": [">", 0, "<", 10]}]},
        },
        {"source": [{"prefix": "com.example"}], "detail": {"state": [{"anything-but": ["failed"]}]}},
        {
            "source": ["x"],
            "detail": {"name": [{"suffix": ".pdf"}], "flag": [{"exists": True}], "gone": [{"exists": False}]},
        },
        {"source": ["x"], "detail": {"ip": [{"cidr": "10.0.0.0/24"}], "host": [{"wildcard": "*.example.com"}]}},
        {"source": ["x"], "detail": {"code": [{"anything-but": [1, 2]}], "mode": [{"equals-ignore-case": "Fast"}]}},
        {"source": ["x"], "detail": {"n": [{"numeric": ["=", 5]}], "ok": [True], "none": [None]}},
    ],
)
def test_the_event_built_from_a_pattern_matches_it(pattern):
    event = pattern_event(pattern, "123456789012", "eu-central-1")
    assert matches(pattern, event)
    assert (event["account"], event["region"]) == ("123456789012", "eu-central-1")


def test_a_pattern_it_cannot_satisfy_says_so():
    with pytest.raises(CannotSynthesize):
        pattern_event({"source": ["x"], "$or": [{"detail": {"a": ["1"]}}, {"detail": {"b": ["2"]}}]}, "1", "r")


def test_an_s3_event_names_the_bucket_and_key():
    event = s3_event("my-bucket", "uploads/a.jpg", 5, "123456789012", "us-east-1")
    assert event["detail"]["bucket"]["name"] == "my-bucket"
    assert event["detail"]["object"]["key"] == "uploads/a.jpg"
    assert event["resources"] == ["arn:aws:s3:::my-bucket"]
