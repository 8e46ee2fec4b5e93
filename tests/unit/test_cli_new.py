"""taskrunner new job: each flavour's block validates, and --append puts it at the end of Resources."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from taskrunner.cli.main import main
from taskrunner.cli.new import insert_into_resources
from taskrunner.cli.validate import find_problems
from taskrunner.local.cfn_yaml import load

ROOT = Path(__file__).resolve().parents[2]
FLAVOURS = {
    "schedule": ["--schedule", "cron(30 7 ? * MON-FRI *)", "--timezone", "Europe/Berlin"],
    "bare-cron": ["--schedule", "0 6 * * ? *"],
    "s3": ["--s3", "incoming/invoices/", "--suffix", ".pdf"],
    "pattern": ["--pattern", '{"source": ["com.example.billing"], "detail-type": ["Invoice\'s due"]}'],
    "queue": ["--queue"],
    "per-message": ["--queue", "per-message"],
    "manual": [],
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "jobs").mkdir()
    shutil.copy(ROOT / "jobs" / "job.yaml", tmp_path / "jobs" / "job.yaml")
    shutil.copy(ROOT / "template.yaml", tmp_path / "template.yaml")
    return tmp_path / "template.yaml"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_each_flavour_appended_to_the_template_validates_clean(project, flavour, capsys):
    before = load(project)
    assert main(["new", "job", f"new-{flavour}", "--template", str(project), "--append", *FLAVOURS[flavour]]) == 0

    after = load(project)
    logical = "New" + "".join(p.capitalize() for p in flavour.split("-")) + "Job"
    assert list(after["Resources"]) == [*before["Resources"], logical]
    assert list(after["Outputs"]) == list(before["Outputs"])
    blocks, problems = find_problems(project)
    assert [p.line() for p in problems] == []
    assert blocks[-1].job_name == f"new-{flavour}"
    assert main(["validate", str(project)]) == 0


def test_two_appended_jobs_get_their_own_uids(project):
    assert main(["new", "job", "first", "--template", str(project), "--append", "--s3", "a/"]) == 0
    assert main(["new", "job", "second", "--template", str(project), "--append", "--s3", "b/"]) == 0
    resources = load(project)["Resources"]
    uids = {resources[k]["Properties"]["Parameters"]["PosixUid"] for k in ("FirstJob", "SecondJob")}
    assert uids == {10006, 10007}


def test_printed_block_is_what_append_writes(project, capsys):
    assert main(["new", "job", "invoices", "--template", str(project), "--s3", "in/"]) == 0
    printed = capsys.readouterr().out
    original = project.read_text()
    assert main(["new", "job", "invoices", "--template", str(project), "--s3", "in/", "--append"]) == 0
    assert printed in project.read_text()
    assert project.read_text() != original
    assert printed.startswith("  InvoicesJob:\n    Type: AWS::Serverless::Application\n")
    assert "Platform: !Ref PlatformParameter" in printed


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["nightly-report", "--schedule", "rate(1 day)"], "'nightly-report' is also ReportJob's"),
        (["invoices", "--schedule", "0 6 * * ?"], "six fields"),
        (["Invoices_2024", "--s3", "in/"], "JobName"),
        (["invoices", "--pattern", "{not json"], "--pattern is not JSON"),
    ],
)
def test_a_block_that_would_not_validate_is_refused_and_nothing_written(project, args, why, capsys):
    original = project.read_text()
    assert main(["new", "job", *args, "--template", str(project), "--append"]) == 2
    err = capsys.readouterr().err
    assert why in err
    assert len(err.strip().splitlines()) == 1
    assert project.read_text() == original


def test_insertion_goes_before_the_next_section_and_its_comment():
    text = "Resources:\n  A:\n    Type: X\n\n# ---- outputs\nOutputs:\n  O:\n    Value: 1\n"
    assert insert_into_resources(text, "  B:\n    Type: Y\n") == (
        "Resources:\n  A:\n    Type: X\n\n  B:\n    Type: Y\n\n# ---- outputs\nOutputs:\n  O:\n    Value: 1\n"
    )


def test_insertion_at_the_end_of_a_file_whose_last_section_is_resources():
    assert insert_into_resources("Resources:\n  A:\n    Type: X", "  B:\n    Type: Y\n") == (
        "Resources:\n  A:\n    Type: X\n\n  B:\n    Type: Y\n"
    )
