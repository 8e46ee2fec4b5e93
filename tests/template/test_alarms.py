"""Alarms and the dashboard: named for the alarm topic's policy, notifying that topic, querying what the code emits.

A CloudWatch metric is its namespace, name *and* dimension set: an alarm on ``RunsFailed{service}`` never sees a
``RunsFailed{service, job}`` datapoint and stays OK forever. taskrunner.observability.METRICS declares every
metric with the dimension sets it is emitted with; each metric the dashboard or an alarm reads in the
Taskrunner namespace must be one of those pairs.
"""

from __future__ import annotations

import json
import re
from typing import Any

from taskrunner.observability import METRICS, SERVICE, dimension_sets
from tests.policies.cfn import ACCOUNT, REGION, Stack, render_jobs
from tests.policies.iam import Request, allowed, on_behalf_of
from tests.template.walk import platform_element, props, resources_of, sub_text, sub_variables

ALARM = "AWS::CloudWatch::Alarm"
ACTIONS = ("AlarmActions", "OKActions", "InsufficientDataActions")

Metric = tuple[str, str, dict[str, str]]  # namespace, name, dimensions


def function_globals(root_template: dict[str, Any]) -> dict[str, Any]:
    variables: dict[str, Any] = root_template["Globals"]["Function"]["Environment"]["Variables"]
    return variables


def expand_rows(rows: list[list[Any]]) -> list[list[Any]]:
    """A metric widget's rows with the dashboard shorthand expanded, options (a trailing object) dropped.

    '.' repeats the previous row's value at that position; '...' stands for the previous row's values up to
    where the rest of this row continues it, so ``["...", "b"]`` after ``["NS", "M", "D", "a"]`` is
    ``["NS", "M", "D", "b"]`` (CloudWatch's "Dashboard body structure and syntax", metrics array format).
    """
    expanded: list[list[Any]] = []
    for row in rows:
        values = row[:-1] if row and isinstance(row[-1], dict) else list(row)
        if not values:
            raise AssertionError(f"a metric-math row ({row}): teach this test what it reads")
        if values[0] == "...":
            rest = values[1:]
            previous = expanded[-1]
            values = previous[: len(previous) - len(rest)] + rest
        values = [expanded[-1][i] if value == "." else value for i, value in enumerate(values)]
        expanded.append(values)
    return expanded


def dashboard_metrics(root: Stack) -> list[tuple[str, Metric]]:
    body = props(root.template, "Dashboard")["DashboardBody"]
    text = sub_text(body)
    assert text is not None
    # The body is a !Sub of a JSON string: placeholders become dummies, the JSON must still parse.
    dashboard = json.loads(re.sub(r"\$\{[^}]+\}", "placeholder", text))
    found = []
    for widget in dashboard["widgets"]:
        if widget["type"] != "metric":
            continue
        for row in expand_rows(widget["properties"]["metrics"]):
            namespace, name, *pairs = row
            assert len(pairs) % 2 == 0, f"{widget['properties']['title']}: {row}"
            dimensions = dict(zip(pairs[::2], pairs[1::2], strict=True))
            found.append((f"dashboard '{widget['properties']['title']}'", (namespace, name, dimensions)))
    return found


def alarm_metrics(label: str, alarm: dict[str, Any]) -> list[tuple[str, Metric]]:
    """Every metric an alarm reads: its single metric, or each MetricStat of its metric-math form."""

    def dimensions(entries: list[dict[str, Any]]) -> dict[str, str]:
        return {d["Name"]: d["Value"] for d in entries}

    if "MetricName" in alarm:
        return [(label, (alarm["Namespace"], alarm["MetricName"], dimensions(alarm.get("Dimensions", []))))]
    found = []
    for query in alarm["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            found.append((label, (metric["Namespace"], metric["MetricName"], dimensions(metric.get("Dimensions", [])))))
        else:
            assert "Expression" in query, f"{label}: {query}"
    return found


def every_alarm(root: Stack, job_sets: dict[str, Stack]) -> list[tuple[str, dict[str, Any]]]:
    """Every alarm the stack deploys, resolved: the root's and each job's (where the job has it)."""
    alarms = [(f"root.{k}", root.value(a["Properties"])) for k, a in resources_of(root.template, ALARM).items()]
    for name, job in job_sets.items():
        for logical_id, alarm in resources_of(job.template, ALARM).items():
            if "Condition" not in alarm or job.condition(alarm["Condition"]):
                alarms.append((f"{name}.{logical_id}", job.value(alarm["Properties"])))
    return alarms


# ------------------------------------------------------------------------------------------ names and actions


def test_every_alarm_is_named_for_the_stack_and_notifies_the_alarm_topic(
    transformed_template: dict[str, Any], job_template: dict[str, Any]
) -> None:
    root_alarms = resources_of(transformed_template, ALARM)
    job_alarms = resources_of(job_template, ALARM)

    assert root_alarms
    assert job_alarms
    for logical_id, alarm in root_alarms.items():
        properties = alarm["Properties"]
        assert (sub_text(properties.get("AlarmName")) or "").startswith("${AWS::StackName}."), logical_id
        assert properties["AlarmActions"] == [{"Ref": "AlarmTopic"}], logical_id
        for key in ACTIONS:
            assert properties.get(key, [{"Ref": "AlarmTopic"}]) == [{"Ref": "AlarmTopic"}], f"{logical_id}.{key}"
    for logical_id, alarm in job_alarms.items():
        properties = alarm["Properties"]
        name = properties.get("AlarmName")
        assert (sub_text(name) or "").startswith("${StackPrefix}.${JobName}."), logical_id
        assert platform_element(sub_variables(name)["StackPrefix"]) == "stack name", logical_id
        for key in ACTIONS:
            for action in properties.get(key, []):
                assert platform_element(action) == "alarm topic ARN", f"{logical_id}.{key}"
        assert properties["AlarmActions"], logical_id


def test_every_alarm_may_publish_to_the_alarm_topic(root: Stack, job_sets: dict[str, Stack]) -> None:
    # The topic admits only alarms named '<stack>.*': an alarm named otherwise would fire into nothing.
    policy = root.value(props(root.template, "AlarmTopicPolicy")["PolicyDocument"])["Statement"]
    topic = root.ref("AlarmTopic")  # a topic's Ref is its ARN
    platform_topic = render_jobs().SAMPLE_PLATFORM["alarm topic ARN"]
    alarms = every_alarm(root, job_sets)
    names = [alarm["AlarmName"] for _, alarm in alarms]

    assert any(label.endswith("WorkDeadLetterAlarm") for label, _ in alarms)
    assert len(names) == len(set(names)), "two alarms of the stack share a name"
    for label, alarm in alarms:
        name = alarm["AlarmName"]
        assert len(name) <= 255, label
        arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"
        request = Request("sns:Publish", topic, service="cloudwatch.amazonaws.com", context=on_behalf_of(arn))
        assert allowed(request, policy), f"{label}: {name}"
        assert alarm["AlarmActions"] in ([topic], [platform_topic]), label


# ------------------------------------------------------------------------------------------ metrics


def test_dashboard_shorthand_is_expanded_as_cloudwatch_reads_it() -> None:
    rows = [["NS", "A", "service", "x"], [".", "B", ".", "."], ["...", "y"], ["NS2", "C", "D", "z", {"stat": "Max"}]]

    assert expand_rows(rows) == [
        ["NS", "A", "service", "x"],
        ["NS", "B", "service", "x"],
        ["NS", "B", "service", "y"],
        ["NS2", "C", "D", "z"],
    ]


def test_dashboard_and_alarms_query_only_metrics_the_code_emits(
    root: Stack, root_template: dict[str, Any], job_sets: dict[str, Stack]
) -> None:
    namespace = function_globals(root_template)["POWERTOOLS_METRICS_NAMESPACE"]
    service = function_globals(root_template)["POWERTOOLS_SERVICE_NAME"]
    queried = dashboard_metrics(root)
    for label, alarm in every_alarm(root, job_sets):
        queried += alarm_metrics(label, alarm)
    ours = [(label, metric) for label, metric in queried if metric[0] == namespace]

    assert any(label.startswith("dashboard") for label, _ in ours)
    assert any(label.startswith("root.") for label, _ in ours)
    for label, (_, name, dimensions) in ours:
        assert name in METRICS, f"{label}: {name} is not declared in taskrunner.observability.METRICS"
        declared = sorted(sorted(dims) for dims in dimension_sets(name))
        assert frozenset(dimensions) in dimension_sets(name), f"{label}: {name}{sorted(dimensions)}, emitted {declared}"
        # Powertools names the service dimension after POWERTOOLS_SERVICE_NAME.
        assert dimensions[SERVICE] == service, f"{label}: {name}"


def test_every_declared_metric_carries_the_service_dimension() -> None:
    # Powertools adds it to every metric; a declared set without it would be one the code never emits.
    assert {
        name: sets for name in METRICS if not (sets := dimension_sets(name)) or not all(SERVICE in d for d in sets)
    } == {}


def test_dashboard_reads_the_aws_metrics_of_the_stacks_own_resources(root: Stack) -> None:
    # Outside the Taskrunner namespace the dashboard reads AWS's own metrics of this stack's resources.
    queue_names = {root.attribute(q, "QueueName") for q in resources_of(root.template, "AWS::SQS::Queue")}
    functions = {root.ref(f) for f in resources_of(root.template, "AWS::Lambda::Function")}
    body = props(root.template, "Dashboard")["DashboardBody"]
    text = root.value(body)
    dashboard = json.loads(text)
    rows = [
        row
        for widget in dashboard["widgets"]
        if widget["type"] == "metric"
        for row in expand_rows(widget["properties"]["metrics"])
    ]

    for namespace, name, *pairs in rows:
        dimensions = dict(zip(pairs[::2], pairs[1::2], strict=True))
        if namespace == "AWS/SQS":
            assert (name, set(dimensions)) == ("ApproximateNumberOfMessagesVisible", {"QueueName"})
            assert dimensions["QueueName"] in queue_names
        elif namespace == "AWS/Lambda":
            assert (name, set(dimensions)) == ("Errors", {"FunctionName"})
            assert dimensions["FunctionName"] in functions
