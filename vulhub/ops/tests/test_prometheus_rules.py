"""Prometheus' configuration and VulHub's alert rules, checked by promtool as CI would.

`promtool check config` and `check rules` prove the files load; `promtool test rules`
runs the unit tests of deploy/prometheus/tests/, in which every alert fires on made-up
series and resolves again. Around that, what promtool cannot know: every alert has a
severity, a summary, a description and a runbook link to a section of
docs/monitoring.md that exists; every rule is fired (at each severity) and resolved by a
unit test; every metric the rules read is documented, and the vulhub_pg_* ones are
exported by the queries file; the replica's sources the rules name are the app's.
promtool is Debian's `prometheus` package (`make test-deps`); without it these tests
fail, they do not skip.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from vulhub.lib import replica
from vulhub.tests.servers import ROOT, binary

PROMETHEUS = ROOT / "deploy" / "prometheus"
CONFIG = PROMETHEUS / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS / "alerts").glob("*.yml"))
UNIT_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
DOC = ROOT / "docs" / "monitoring.md"
QUERIES = yaml.safe_load((ROOT / "deploy" / "postgres-exporter" / "queries.yaml").read_text())
# a path in this repository: the operator reads it in the checkout they deploy from (or
# prefixes the address where they publish these docs)
RUNBOOKS = "docs/monitoring.md#"
SEVERITIES = {"warning", "critical"}


def alert_rules() -> list[dict]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def promtool(*args: str, cwd: Path = ROOT) -> str:
    """promtool's output; a failure fails the test with what promtool said."""
    done = subprocess.run(  # noqa: S603  (Debian's promtool)
        [binary("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    output = f"{done.stdout}\n{done.stderr}".strip()
    assert done.returncode == 0, f"`promtool {' '.join(args)}` failed:\n{output}"
    return output


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown page: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", markdown, flags=re.M):
        anchor = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(anchor)
    return anchors


def test_there_are_rules_and_unit_tests():
    assert RULE_FILES and UNIT_TESTS
    assert len(alert_rules()) >= 12


def test_the_configuration_is_valid_with_its_rule_files(tmp_path):
    """The repository's file as written, then a copy whose token file exists here.

    The token file is written by the prometheus container when it starts
    (docker-compose.yml), so on this machine a full check of the file as written would
    only say that it is missing: the syntax check reads the file as written, the full
    check (rule files loaded and checked too) reads a copy that differs in that path only.
    """
    promtool("check", "config", "--syntax-only", str(CONFIG))
    config = yaml.safe_load(CONFIG.read_text())
    (token_file,) = [
        job["authorization"]["credentials_file"] for job in config["scrape_configs"] if "authorization" in job
    ]
    copy = tmp_path / "prometheus"
    shutil.copytree(PROMETHEUS, copy)
    token = tmp_path / "metrics_token"
    token.write_text("a-token-for-the-check-only-0123456789abcdef")
    text = CONFIG.read_text()
    assert text.count(token_file) == 1
    (copy / "prometheus.yml").write_text(text.replace(token_file, str(token)))
    output = promtool("check", "config", str(copy / "prometheus.yml"))
    rules_found = sum(int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", output))
    assert rules_found == sum(
        len(group["rules"]) for p in RULE_FILES for group in yaml.safe_load(p.read_text())["groups"]
    )


def test_the_rule_files_are_valid():
    promtool("check", "rules", *map(str, RULE_FILES))


def test_the_unit_tests_of_the_rules_pass():
    output = promtool("test", "rules", *map(str, UNIT_TESTS))
    assert output.count("SUCCESS") == len(UNIT_TESTS)


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: f"{rule['alert']}-{rule['labels']['severity']}")
def test_every_alert_has_a_severity_a_summary_and_a_runbook_in_the_docs(rule):
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"] and annotations["description"]
    url = annotations["runbook_url"]
    assert url.startswith(RUNBOOKS), f"{rule['alert']}: runbooks live in docs/monitoring.md ({RUNBOOKS}...)"
    anchor = url.removeprefix(RUNBOOKS)
    assert anchor == rule["alert"].lower(), f"{rule['alert']}: its section is '### {rule['alert']}'"
    assert anchor in github_anchors(DOC.read_text(encoding="utf-8")), f"docs/monitoring.md has no section #{anchor}"


def test_no_two_rules_share_an_alert_name_and_a_severity():
    keys = [(rule["alert"], rule["labels"]["severity"]) for rule in alert_rules()]
    assert len(keys) == len(set(keys))


def unit_test_checks() -> list[tuple[str, list[dict]]]:
    """(file name, the alert_rule_test entries of one test group) for every group of every unit test file."""
    groups = []
    for path in UNIT_TESTS:
        spec = yaml.safe_load(path.read_text())
        rule_files = {(path.parent / name).resolve() for name in spec["rule_files"]}
        assert rule_files == {p.resolve() for p in RULE_FILES}, f"{path.name} must load every rule file"
        groups += [(path.name, group["alert_rule_test"]) for group in spec["tests"]]
    return groups


def to_minutes(duration: str) -> float:
    units = {"s": 1 / 60, "m": 1, "h": 60, "d": 1440}
    return sum(float(n) * units[unit] for n, unit in re.findall(r"(\d+(?:\.\d+)?)([smhd])", duration))


def test_every_rule_is_fired_and_then_resolved_by_a_unit_test():
    fired, resolved = set(), set()
    for _, checks in unit_test_checks():
        for check in checks:
            for alert in check["exp_alerts"]:
                fired.add((check["alertname"], alert["exp_labels"]["severity"]))
        # resolved: no alert at a time after one where it fired, in the same series
        for later in checks:
            if later["exp_alerts"]:
                continue
            for earlier in checks:
                if (
                    earlier["alertname"] == later["alertname"]
                    and earlier["exp_alerts"]
                    and to_minutes(earlier["eval_time"]) < to_minutes(later["eval_time"])
                ):
                    resolved.add(later["alertname"])
    rules = {(rule["alert"], rule["labels"]["severity"]) for rule in alert_rules()}
    assert not rules - fired, f"no unit test fires {sorted(rules - fired)}"
    assert not fired - rules, f"unit tests expect alerts no rule makes: {sorted(fired - rules)}"
    names = {name for name, _ in rules}
    assert not names - resolved, f"no unit test resolves {sorted(names - resolved)}"


def test_every_unit_test_says_what_it_expects_of_the_annotations():
    for name, checks in unit_test_checks():
        for check in checks:
            for alert in check["exp_alerts"]:
                assert set(alert.get("exp_annotations", {})) == {"summary", "description", "runbook_url"}, (
                    f"{name}: {check['alertname']} at {check['eval_time']}"
                )


def metrics_read_by_the_rules() -> set[str]:
    expressions = " ".join(rule["expr"] for rule in alert_rules())
    names = set(re.findall(r"\b((?:vulhub|django|pg|redis|node)_[a-z0-9_]+)\b", expressions))
    return names | ({"up"} if re.search(r"\bup\{", expressions) else set())


def test_every_metric_the_rules_read_is_documented():
    doc = DOC.read_text(encoding="utf-8")
    missing = sorted(name for name in metrics_read_by_the_rules() if f"`{name}" not in doc)
    assert not missing, f"docs/monitoring.md does not explain {missing}"


def test_the_vulhub_pg_metrics_the_rules_read_come_from_the_queries_file():
    exported = {
        f"{namespace}_{column}"
        for namespace, spec in QUERIES.items()
        for metric in spec["metrics"]
        for column, column_spec in metric.items()
        if column_spec["usage"] != "LABEL"
    }
    read = {name for name in metrics_read_by_the_rules() if name.startswith("vulhub_pg_")}
    assert read and read <= exported, f"the queries file exports none of {sorted(read - exported)}"


def test_the_replica_sources_the_rules_name_are_the_ones_the_app_counts():
    """A source renamed in vulhub/lib/replica.py would leave its alert silent, which promtool cannot see."""
    counted = {sample.labels["source"] for family in replica.READS.collect() for sample in family.samples}
    named = set()
    for rule in alert_rules():
        for sources in re.findall(r'vulhub_replica_reads_total\{source=~?"([^"]+)"\}', rule["expr"]):
            named |= set(sources.split("|"))
    assert named and named <= counted, f"the rules name {sorted(named)}, the app counts {sorted(counted)}"


def test_the_docs_links_to_sections_resolve():
    """Links of docs/monitoring.md to its own sections and to other pages' sections lead somewhere."""
    text = DOC.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([\w.-]*)#([\w-]+)\)", text)
    assert links
    for page, anchor in links:
        target = DOC if not page else DOC.parent / page
        assert target.is_file(), f"{DOC.name} links to {page}, which does not exist"
        assert anchor in github_anchors(target.read_text(encoding="utf-8")), f"{page or DOC.name} has no #{anchor}"
