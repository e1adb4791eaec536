"""`micado simulate`: MiCADO's demo rules in a closed loop against the shipped scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from micado.adt import compile_adt
from micado.adt.model import Plan
from micado.cli.main import main
from micado.policy.simulate import (
    Expression,
    ExpressionError,
    ScenarioError,
    SimulationResult,
    load_scenario,
    parse_scenario,
    simulate,
)

ROOT = Path(__file__).resolve().parents[2]
ADTS = ROOT / "examples" / "micado"
SCENARIOS = ROOT / "examples" / "scenarios"


def plan_of(name: str) -> Plan:
    return compile_adt((ADTS / name).read_text()).plan


@pytest.fixture(scope="module")
def stressng() -> SimulationResult:
    return simulate(plan_of("stressng_nova.yaml"), load_scenario(SCENARIOS / "stressng.yaml"))


@pytest.fixture(scope="module")
def nginx() -> SimulationResult:
    return simulate(plan_of("nginx_ec2.yaml"), load_scenario(SCENARIOS / "nginx.yaml"))


def first_time(result: SimulationResult, target: str, size: int) -> float:
    return next(r.time for r in result.rows
                if {**r.nodes, **r.containers}[target] == (size, size))


def test_stressng_scales_out_to_three_and_back_in(stressng: SimulationResult) -> None:
    assert stressng.peak == {"worker-node": 3, "stressng": 3}
    assert stressng.peak_ready == {"worker-node": 3, "stressng": 3}
    assert stressng.final == {"worker-node": 1, "stressng": 1}
    assert stressng.final_ready == {"worker-node": 1, "stressng": 1}
    assert stressng.errors == 0 and stressng.warnings == []
    # MiCADO's order: the VM comes first, the container follows once the VM is Ready
    assert first_time(stressng, "worker-node", 3) < first_time(stressng, "stressng", 3)
    out = next(r for r in stressng.rows if r.nodes["worker-node"][0] == 2)
    assert out.reasons == ["worker-node: scale out 1 -> 2: the rule set m_node_count to 2"]
    assert "node_overloaded" in out.alerts
    # the VM is not Ready before vm_boot_seconds
    assert out.nodes["worker-node"] == (2, 1)
    ready = next(r for r in stressng.rows if r.nodes["worker-node"] == (2, 2))
    assert ready.time - out.time >= 120
    assert stressng.rows[-1].alerts == []


def test_nginx_fills_a_vm_adds_a_second_and_scales_back(nginx: SimulationResult) -> None:
    assert nginx.peak == {"worker-node": 2, "nginxapp": 8}
    assert nginx.final == {"worker-node": 1, "nginxapp": 1}
    assert nginx.final_ready == {"worker-node": 1, "nginxapp": 1}
    assert nginx.errors == 0
    second_vm = next(r for r in nginx.rows if r.nodes["worker-node"][0] == 2)
    assert second_vm.containers["nginxapp"] == (4, 4)  # 4 per node before a VM is added
    # never more containers running than the Ready VMs hold
    assert all(r.containers["nginxapp"][1] <= 4 * r.nodes["worker-node"][1]
               for r in nginx.rows)
    # scale in: the VM goes when its containers are down to one VM's worth
    back = next(r for r in nginx.rows if r.time > second_vm.time
                and r.nodes["worker-node"][0] == 1)
    assert back.containers["nginxapp"][0] == 4
    assert nginx.rows[-1].queries["TIME"] == nginx.rows[-1].time


def test_cli_table_and_html_report(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    result = CliRunner().invoke(main, [
        "simulate", str(ADTS / "stressng_nova.yaml"),
        "--scenario", str(SCENARIOS / "stressng.yaml"), "-o", str(report)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["time", "load", "worker-node", "stressng"]
    assert any("scale out 1 -> 2" in line for line in lines)
    assert lines[-2].startswith("summary: worker-node final 1 (peak 3), stressng final 1 "
                                "(peak 3)")
    assert lines[-1] == f"wrote {report}"
    text = report.read_text()
    assert "<svg" in text and "</svg>" in text and "<script" not in text
    assert "scale in 3 -&gt; 2" in text


@pytest.mark.parametrize("text", [
    "__import__('os')", "load.real", "().__class__", "open('x')", "'a'", "[1, 2]",
    "load ** 99", "lambda: 1", "f(load)", "max(*[load])", "unknown_name + 1", "load[0]",
])
def test_expressions_refuse_everything_but_arithmetic(text: str) -> None:
    with pytest.raises(ExpressionError):
        Expression(text)


def test_expressions_compute() -> None:
    env = {"load": 3.0, "ready_containers": 0, "now": 30}
    assert Expression("load / max(ready_containers, 1)")(env) == 3.0
    assert Expression("1 < load <= 3 and not now > 60")(env) is True
    assert Expression("load if ready_containers else -1")(env) == -1
    assert Expression(2.5)(env) == 2.5
    with pytest.raises(ExpressionError, match="division by zero"):
        Expression("load / ready_containers")(env)


def test_scenario_problems_have_key_paths() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario("duration: -1\ncluster: {vm_boot_seconds: soon, disk: 1}\n"
                       "load: [[0, 1], [5]]\nqueries: {A: 'os.system(1)'}\nextra: 1\n")
    paths = [p for p, _ in info.value.problems]
    assert paths == ["extra", "duration", "cluster.vm_boot_seconds", "cluster.disk",
                     "load[1]", "queries.A"]


def test_names_must_fit_the_adt() -> None:
    scenario = parse_scenario("duration: 60\nload: [[0, 1]]\nqueries: {TIME: now, NOPE: 1}\n"
                              "alerts: {hot: load > 1}\ninitial: {db: 1}\n")
    with pytest.raises(ScenarioError) as info:
        simulate(plan_of("nginx_ec2.yaml"), scenario)
    messages = dict(info.value.problems)
    assert "not a query" in messages["queries.NOPE"]
    assert "REQUESTSPERCONT" in messages["queries"]
    assert "not an alert" in messages["alerts.hot"]
    assert "initial.db" in messages


def test_cli_broken_scenario_exits_2_with_the_key_path(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("duration: 600\ncluster:\n  cpu_per_node: lots\nload: [[0, 1]]\n")
    result = CliRunner().invoke(main, ["simulate", str(ADTS / "stressng_nova.yaml"),
                                       "--scenario", str(scenario)])
    assert result.exit_code == 2
    assert "cluster.cpu_per_node: must be a positive number, got 'lots'" in result.output
    assert "Traceback" not in result.output

    scenario.write_text("duration: 600\nload: [[0, 1]]\nqueries: {TIME: now}\n")
    result = CliRunner().invoke(main, ["simulate", str(ADTS / "stressng_nova.yaml"),
                                       "--scenario", str(scenario)])
    assert result.exit_code == 2
    assert "queries.TIME: not a query of the ADT's policies" in result.output

    scenario.write_text("duration: [\n")
    result = CliRunner().invoke(main, ["simulate", str(ADTS / "stressng_nova.yaml"),
                                       "--scenario", str(scenario)])
    assert result.exit_code == 2 and "not YAML: line" in result.output


def test_runtime_expression_error_is_reported(tmp_path: Path) -> None:
    scenario = tmp_path / "zero.yaml"
    scenario.write_text("duration: 60\nload: [[0, 1]]\n"
                        "queries: {TIME: now, REQUESTSPERCONT: load / (ready_containers - 1)}\n")
    result = CliRunner().invoke(main, ["simulate", str(ADTS / "nginx_ec2.yaml"),
                                       "--scenario", str(scenario)])
    assert result.exit_code == 2
    assert "queries.REQUESTSPERCONT: at t=0 s: division by zero" in result.output


def test_alert_for_is_honoured() -> None:
    scenario = parse_scenario(
        "duration: 120\nload: [[0, 5]]\ncluster: {containers_per_node: 1}\n"
        "alerts: {service_overloaded: load > 1, node_overloaded: load > 1}\n")
    result = simulate(plan_of("stressng_nova.yaml"), scenario)
    fired = {name: next(r.time for r in result.rows if name in r.alerts)
             for name in ("service_overloaded", "node_overloaded")}
    assert fired == {"service_overloaded": 30, "node_overloaded": 60}
    assert any("never fires" in w for w in result.warnings)


JQUEUER_SCENARIO = """
duration: 120
tick: 15
load: [[0, 0]]
queries:
  AET: 60
  REMAININGTIME: 600 - now
  TOTALJOBS: {totaljobs}
  ITEMS: no_series
  COMPLETED: no_series
  JOBSFAIL: no_series
  CALC_AET: no_series
"""


def jqueuer_run(totaljobs: str) -> SimulationResult:
    plan = compile_adt((ROOT / "tests" / "data" / "micado" / "jqueuer.yaml").read_text()).plan
    return simulate(plan, parse_scenario(JQUEUER_SCENARIO.format(totaljobs=totaljobs)))


def test_a_scenario_query_with_no_series_reaches_the_rule_as_none() -> None:
    """MiCADO's jqueuer demo before any job completed: its rule guards the empty queries."""
    result = jqueuer_run("20")
    assert result.errors == 0
    first = result.rows[0]
    assert first.nodes["worker-node"][0] == 3  # ceil(60 / ((600 - 12) / 20))
    assert first.queries["COMPLETED"] is None
    assert first.reasons == ["worker-node: scale out 0 -> 3: the rule set m_node_count to 3 "
                             "(queries JOBSFAIL, ITEMS, COMPLETED, CALC_AET returned no series: "
                             "the rule saw None)"]


def test_a_scenario_query_prometheus_cannot_answer_holds() -> None:
    result = jqueuer_run("unanswered if now < 60 else 20")
    assert [r.nodes["worker-node"][0] for r in result.rows if r.time < 60] == [0, 0, 0, 0]
    assert all("TOTALJOBS" not in r.queries for r in result.rows if r.time < 60)
    assert next(r for r in result.rows if r.time == 60).nodes["worker-node"][0] == 3
    with pytest.raises(ScenarioError, match=r"queries\.TOTALJOBS: at t=0 s: unsupported"):
        jqueuer_run("unanswered + 1")
    with pytest.raises(ScenarioError, match=r"alerts\.high: unknown name 'no_series'"):
        parse_scenario("duration: 60\nload: [[0, 1]]\nalerts: {high: no_series}\n")
