"""Every alert the code can send, and every CloudWatch alarm, has a runbook entry.

Alerts are found in the code by `ast` (every call that builds an `Alert`, directly or through a
helper that forwards its `title`), not from a hand list, so a new alert fails here until
docs/operations/alerts.md has its heading.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml
from docs_helpers import ROOT, alert_sites, anchors, headings

from idminter_pipeline.core.alerts import RUNBOOK_PAGE, Alert, runbook_anchor

RUNBOOK = ROOT / RUNBOOK_PAGE
PARTS = ("What it means", "Impact", "What to check", "Fix", "When to escalate")
TEMPLATES = sorted((ROOT / "deploy" / "aws").glob("*.yaml"))


def _entry_headings() -> list[str]:
    return [text for level, text in headings(RUNBOOK) if level in (2, 3)]


def _entry(heading: str) -> str:
    """The text of one `###` entry, up to the next heading of its level or above."""
    text = RUNBOOK.read_text(encoding="utf-8")
    start = text.index(f"\n### {heading}\n")
    following = re.search(r"\n#{1,3} ", text[start + 1 :])
    return text[start : start + 1 + following.start()] if following else text[start:]


def test_the_code_sends_the_alerts_the_test_knows_how_to_find():
    # A floor, so a broken finder cannot pass by finding nothing.
    sites = alert_sites()
    assert len(sites) >= 10
    assert any("pool" in site.where and "critical" in site.title_pattern for site in sites)


@pytest.mark.parametrize("site", alert_sites(), ids=lambda s: f"{s.where}:{s.title_pattern}")
def test_every_alert_the_code_can_send_has_a_runbook_heading(site):
    assert site.heading is not None, (
        f"{site.where}: the alert's title has variable parts; pass runbook='<heading>' naming "
        f"its entry in {RUNBOOK_PAGE}"
    )
    assert re.fullmatch(site.title_pattern, site.heading), (
        f"{site.where}: runbook heading {site.heading!r} does not match the title it names"
    )
    assert site.heading in _entry_headings(), (
        f"{site.where}: no '### {site.heading}' in {RUNBOOK_PAGE}"
    )


@pytest.mark.parametrize("heading", sorted({s.heading for s in alert_sites() if s.heading}))
def test_every_runbook_entry_says_what_to_check_and_do(heading):
    entry = _entry(heading)
    missing = [part for part in PARTS if f"**{part}.**" not in entry]
    assert not missing, f"{heading}: missing {missing}"


def test_an_alert_message_links_to_its_entry():
    plain = Alert(title="Free-ID pool below low watermark", what_happened="x", what_to_do="y")
    varying = Alert(
        title="Minting run failed: mint_works",
        what_happened="x",
        what_to_do="y",
        runbook="Minting run failed: {job}",
    )
    page_anchors = anchors(RUNBOOK)
    for alert, anchor in (
        (plain, "free-id-pool-below-low-watermark"),
        (varying, "minting-run-failed-job"),
    ):
        assert alert.message().splitlines()[-1] == f"Runbook: {RUNBOOK_PAGE}#{anchor}"
        assert alert.as_dict()["runbook"] == f"{RUNBOOK_PAGE}#{anchor}"
        assert anchor in page_anchors


def test_the_anchor_is_githubs():
    assert runbook_anchor("{count} work(s) failed minting") == "count-works-failed-minting"
    assert runbook_anchor("Minting run failed: {job}") == "minting-run-failed-job"


def _alarms(path: Path) -> dict[str, dict]:
    resources = cfn_yaml.load(str(path)).get("Resources", {})
    return {
        name: resource.get("Properties", {})
        for name, resource in resources.items()
        if isinstance(resource, dict) and resource.get("Type") == "AWS::CloudWatch::Alarm"
    }


def _alarm_heading(logical_id: str, name: object) -> str:
    """The runbook heading of an alarm: its name as the notification shows it. A name made
    unique per stack, `!Sub ${AWS::StackName}-suffix`, is headed `STACK-suffix`; an unnamed
    alarm (CloudFormation makes up its name) by its logical ID."""
    if isinstance(name, str):
        return name
    if isinstance(name, dict) and isinstance(name.get("Fn::Sub"), str):
        return name["Fn::Sub"].replace("${AWS::StackName}", "STACK")
    return logical_id


def test_an_alarm_named_per_stack_is_headed_by_its_name():
    assert _alarm_heading("A", {"Fn::Sub": "${AWS::StackName}-daemon"}) == "STACK-daemon"
    assert _alarm_heading("DeadLetterAlarm", None) == "DeadLetterAlarm"


def test_the_templates_define_alarms():
    assert any(_alarms(path) for path in TEMPLATES)


@pytest.mark.parametrize(
    ("template", "alarm"),
    [(path.name, name) for path in TEMPLATES for name in _alarms(path)],
)
def test_every_cloudwatch_alarm_has_a_runbook_entry_its_description_links_to(template, alarm):
    properties = _alarms(ROOT / "deploy" / "aws" / template)[alarm]
    heading = _alarm_heading(alarm, properties.get("AlarmName"))
    assert heading in _entry_headings(), f"{template}: no '### {heading}' in {RUNBOOK_PAGE}"
    missing = [part for part in PARTS if f"**{part}.**" not in _entry(heading)]
    assert not missing, f"{heading}: missing {missing}"
    link = f"{RUNBOOK_PAGE}#{runbook_anchor(heading)}"
    assert link in str(properties.get("AlarmDescription", "")), (
        f"{template} {alarm}: AlarmDescription should end with 'Runbook: {link}'"
    )
