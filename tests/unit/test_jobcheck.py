"""taskrunner validate's rules: each mistake a job block can hold gives one line naming job, block and parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskrunner.cli.main import main
from taskrunner.cli.validate import find_problems, problem_lines
from taskrunner.domain.jobcheck import JobBlock, Problem, check_blocks, declarations
from taskrunner.local.cfn_yaml import load

ROOT = Path(__file__).resolve().parents[2]
DECLS = declarations(load(ROOT / "jobs" / "job.yaml"))
GOOD: dict[str, Any] = {
    "JobName": "invoices",
    "Image": "public.ecr.aws/docker/library/python:3.13-slim",
    "ScheduleExpression": "cron(0 6 * * ? *)",
    "Platform": {"Ref": "PlatformParameter"},
}


def problems(**params: Any) -> list[Problem]:
    block = JobBlock("InvoicesJob", "jobs/job.yaml", {k: v for k, v in (GOOD | params).items() if v is not None})
    return check_blocks([(block, DECLS)])


def only(**params: Any) -> Problem:
    found = problems(**params)
    assert len(found) == 1, [p.line() for p in found]
    return found[0]


def test_a_good_block_has_no_problems():
    assert problems() == []


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 6 * * ? *)",
        "cron(0/15 8-17 ? * MON-FRI *)",
        "cron(0 12 L * ? *)",
        "cron(0 9 15W * ? *)",
        "cron(0 9 ? * 2#1 *)",
        "cron(0 18 ? * 6L 2027)",
        "rate(5 minutes)",
        "rate(1 day)",
        "at(2027-01-31T09:30:00)",
    ],
)
def test_aws_schedule_expressions_are_accepted(expression):
    assert problems(ScheduleExpression=expression) == []


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("cron(0 6 * * ?)", "six fields"),
        ("cron(0 6 * * * *)", "exactly one of day-of-month and day-of-week"),
        ("cron(61 6 * * ? *)", "outside 0-59"),
        ("cron(0 9 ? * 2#6 *)", "# takes 1-5"),
        ("rate(0 minutes)", "positive"),
        ("rate(5 weeks)", "expected"),
        ("at(2027-02-30T09:30:00)", "day is out of range"),
    ],
)
def test_a_bad_schedule_expression_names_the_parameter_and_why(expression, why):
    problem = only(ScheduleExpression=expression)
    assert (problem.logical_id, problem.job, problem.parameter) == ("InvoicesJob", "invoices", "ScheduleExpression")
    assert why in problem.message


def test_an_unknown_time_zone_is_refused():
    problem = only(ScheduleTimezone="Europe/Berln")
    assert problem.parameter == "ScheduleTimezone"
    assert "unknown time zone 'Europe/Berln'" in problem.message


def test_a_missing_image_is_required():
    assert only(Image=None).line() == "InvoicesJob (invoices) Image: is required"


def test_a_job_name_with_capitals_and_underscore_is_refused():
    problem = only(JobName="Invoices_2024")
    assert problem.line().startswith("InvoicesJob (Invoices_2024) JobName: 'Invoices_2024': expected 1-40 lowercase")


def test_an_enum_in_the_wrong_case_suggests_the_right_one():
    problem = only(OverlapPolicy="forbid")
    assert problem.parameter == "OverlapPolicy"
    assert problem.message == "'forbid' is not one of Allow, Forbid, Replace (did you mean Forbid?)"


def test_an_event_pattern_that_is_not_json_is_refused():
    problem = only(EventPattern="{source: [com.example]}")
    assert problem.parameter == "EventPattern"
    assert "is not JSON" in problem.message


def test_json_that_eventbridge_would_refuse_as_a_pattern_is_refused():
    problem = only(EventPattern='{"source": "com.example.orders"}')
    assert problem.parameter == "EventPattern"
    assert "not a valid EventBridge pattern" in problem.message


@pytest.mark.parametrize("deadline", [10, "59", 86_401])
def test_a_starting_deadline_outside_schedulers_range_is_refused(deadline):
    problem = only(StartingDeadlineSeconds=deadline)
    assert problem.parameter == "StartingDeadlineSeconds"


@pytest.mark.parametrize("deadline", [0, 60, "600", 86_400])
def test_a_starting_deadline_of_none_or_in_range_is_accepted(deadline):
    assert problems(StartingDeadlineSeconds=deadline) == []


@pytest.mark.parametrize("codes", [75, "75", "2,75", "2, 75"])
def test_exit_codes_as_yaml_users_write_them(codes):
    """The README's ``RetryExitCodes: 75`` is an int to YAML: accepted, as CloudFormation accepts it."""
    assert problems(RetryExitCodes=codes, MaxAttempts=3) == []


@pytest.mark.parametrize(("codes", "why"), [("300", "0-255"), ("2,x", "expected exit codes")])
def test_exit_codes_outside_a_status_byte_are_refused(codes, why):
    problem = only(RetryExitCodes=codes)
    assert problem.parameter == "RetryExitCodes"
    assert why in problem.message


def test_a_yaml_list_of_exit_codes_says_how_to_write_it():
    problem = only(RetryExitCodes=[2, 75])
    assert problem.message == "write a comma-separated string (2,75), not a list"


@pytest.mark.parametrize(
    ("params", "parameter"), [({"S3Prefix": "uploads/*"}, "S3Prefix"), ({"S3Suffix": ".jpg"}, "S3Suffix")]
)
def test_prefix_and_suffix_rules(params, parameter):
    assert only(**params).parameter == parameter


@pytest.mark.parametrize(
    ("params", "parameter", "why"),
    [
        ({"MaxAttempts": 11}, "MaxAttempts", "above the maximum 10"),
        ({"MaxAttempts": "three"}, "MaxAttempts", "not a number"),
        ({"Memory": 3000, "Cpu": 1024}, "Memory", "not a Fargate size for Cpu 1024"),
        ({"MinTasks": 7, "MaxTasks": 3}, "MinTasks", "must not exceed MaxTasks"),
        ({"LocalCommand": "python 'unbalanced"}, "LocalCommand", "not a command line"),
        ({"Environment": '{"A": "1"'}, "Environment", "expected a flat JSON object"),
    ],
)
def test_numeric_ranges_sizes_and_shapes(params, parameter, why):
    problem = only(**params)
    assert problem.parameter == parameter
    assert why in problem.message


def test_an_unknown_parameter_suggests_the_known_one():
    problem = only(ScheduleExpresion="rate(1 day)")
    assert problem.message == "unknown parameter (did you mean ScheduleExpression?)"


def test_an_intrinsic_value_is_present_but_not_checked():
    assert problems(Image={"Fn::Sub": "${AWS::AccountId}.dkr.ecr.${AWS::Region}.amazonaws.com/x:1"}) == []


def test_names_and_efs_folders_are_unique_across_jobs():
    first = JobBlock("AJob", "jobs/job.yaml", GOOD | {"EfsPath": "/shared"})
    second = JobBlock("BJob", "jobs/job.yaml", GOOD | {"EfsPath": "/shared"})
    found = check_blocks([(first, DECLS), (second, DECLS)])
    assert [(p.logical_id, p.parameter) for p in found] == [("BJob", "JobName"), ("BJob", "EfsPath")]
    assert "'invoices' is also AJob's" in found[0].message


def test_every_problem_of_a_block_is_reported_one_line_each():
    found = problems(JobName="Bad_Name", OverlapPolicy="forbid", ScheduleExpression="cron(0 6 * * ?)")
    assert sorted(p.parameter or "" for p in found) == ["JobName", "OverlapPolicy", "ScheduleExpression"]
    assert all("\n" not in p.line() for p in found)


# ------------------------------------------------------------------------------ the real template and the CLI


def test_the_real_template_validates_clean():
    blocks, found = find_problems(ROOT / "template.yaml")
    assert [p.line() for p in found] == []
    assert len(blocks) >= 5


def _bad_copy(tmp_path: Path, old: str, new: str) -> Path:
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "job.yaml").write_text((ROOT / "jobs" / "job.yaml").read_text())
    text = (ROOT / "template.yaml").read_text()
    assert old in text
    (tmp_path / "template.yaml").write_text(text.replace(old, new, 1))
    return tmp_path / "template.yaml"


def test_cli_prints_one_line_per_problem_and_exits_1(tmp_path, capsys):
    template = _bad_copy(tmp_path, "OverlapPolicy: Forbid", "OverlapPolicy: forbid")
    assert main(["validate", str(template)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        f"{template}: ReportJob (nightly-report) OverlapPolicy: 'forbid' is not one of Allow, Forbid, Replace "
        "(did you mean Forbid?)"
    )
    assert err[-1] == f"{template}: 1 problem(s) in 5 job block(s)"


def test_cli_reports_a_yaml_error_with_its_line_not_a_traceback(tmp_path, capsys):
    template = _bad_copy(tmp_path, "        OverlapPolicy: Forbid", "        OverlapPolicy: [Forbid")
    assert main(["validate", str(template)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"taskrunner validate: {template}:")
    assert "not YAML" in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_cli_json_gives_one_object_per_problem(tmp_path, capsys):
    template = _bad_copy(tmp_path, "JobName: thumbnails", "JobName: nightly-report")
    assert main(["validate", "--json", str(template)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert '"parameter":"JobName"' in lines[0]
    assert lines[-1].endswith('"problems":1,"valid":false}')


def test_problem_lines_of_a_missing_template(tmp_path):
    assert problem_lines(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: no such file"]
