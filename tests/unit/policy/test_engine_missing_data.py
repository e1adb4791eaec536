"""Missing data: "Prometheus could not answer" holds, "answered with no series" gives None.

MiCADO's jqueuer demo (tests/data/micado/jqueuer.yaml, MiCADO's ADT unchanged) is the case
that needs the distinction: its rule reads COMPLETED, JOBSFAIL, ITEMS and CALC_AET, which have
no series until the first job completes or fails, and guards them itself (`if not JOBSFAIL`).
Expected sizes are MiCADO's arithmetic: nodes = ceil(AET / ((REMAININGTIME - 0.2 AET) / ITEMS)).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from micado.adt import compile_adt
from micado.adt.model import Plan, ScalingPolicy
from micado.adt.policy_options import MISSING_DATA_MODES
from micado.policy.engine import TargetState, TickInputs, decide
from micado.policy.sandbox import RuleResult

DATA = Path(__file__).resolve().parents[2] / "data" / "micado"
SCALING_TYPE = (Path(__file__).resolve().parents[3] / "controller" / "micado" / "adt" / "types"
                / "micado" / "custom_types" / "policy" / "scaling.yaml")
GROUP = "worker-node"
NO_SERIES = ("JOBSFAIL", "ITEMS", "COMPLETED", "CALC_AET")


@pytest.fixture(scope="module")
def plan() -> Plan:
    return compile_adt((DATA / "jqueuer.yaml").read_text(), app_id="jqueuer").plan


@pytest.fixture(scope="module")
def jqueuer(plan: Plan) -> ScalingPolicy:
    return next(p for p in plan.policies if p.target == GROUP)


def before_first_job(**overrides: Any) -> dict[str, Any]:
    """What Prometheus answers while no job has completed or failed: 20 jobs queued, 60 s
    each, 600 s to the deadline; the other queries have no series."""
    values: dict[str, Any] = {"AET": 60.0, "REMAININGTIME": 600.0, "TOTALJOBS": 20.0,
                              **dict.fromkeys(NO_SERIES)}
    values.update(overrides)
    return values


def tick(values: dict[str, Any], nodes: int = 0, *,
         failed: dict[str, str] | None = None) -> TickInputs:
    return TickInputs(now=1000.0, query_results=values, firing_alerts=set(),
                      nodes={GROUP: [{"ID": f"w{i}", "Addr": f"10.0.0.{i}"}
                                     for i in range(nodes)],
                             "jq-server": [{"ID": "jq", "Addr": "10.0.1.1"}]},
                      live_counts={}, failed_queries=dict(failed or {}))


def must_not_run(*args: Any, **kwargs: Any) -> RuleResult:
    raise AssertionError("the rule must not be evaluated")


def micado_nodes(aet: float, remaining: float, items: float) -> int:
    return math.ceil(aet / ((remaining - aet * 0.20) / items))


def test_jqueuer_scales_out_before_any_job_completed_with_default_settings(plan, jqueuer):
    assert jqueuer.options["on_missing_data"] == "hold"  # the default, nothing set
    decision, _ = decide(jqueuer, plan.shared, tick(before_first_job()),
                         TargetState(), None)
    want = micado_nodes(60.0, 600.0, 20.0)
    assert want == 3
    assert (decision.current, decision.desired, decision.error) == (0, want, None)
    assert decision.reason == (f"scale out 0 -> {want}: the rule set m_node_count to {want} "
                               "(queries JOBSFAIL, ITEMS, COMPLETED, CALC_AET returned no "
                               "series: the rule saw None)")


def test_jqueuer_follows_completed_jobs_and_stops_at_the_end(plan, jqueuer):
    shared = plan.shared
    # 5 jobs done at 50 s each, none failed (JOBSFAIL still has no series): AET = CALC_AET
    running = before_first_job(COMPLETED=5.0, CALC_AET=50.0, ITEMS=15.0)
    decision, _ = decide(jqueuer, shared, tick(running, 3), TargetState(last_count=3), None)
    want = micado_nodes(50.0, 600.0, 15.0)
    assert (decision.desired, decision.error) == (max(3, want), None)
    assert "query JOBSFAIL returned no series: the rule saw None" in decision.reason
    # every job done: ITEMS 0 -> the rule sets m_node_count = 0
    done = before_first_job(COMPLETED=20.0, CALC_AET=50.0, ITEMS=0.0)
    decision, _ = decide(jqueuer, shared, tick(done, 3), TargetState(last_count=3), None)
    assert (decision.desired, decision.error) == (0, None)


def test_a_query_prometheus_could_not_answer_holds_and_names_it(plan, jqueuer):
    """D-unanswered-holds: MiCADO gave the rule None; here the target holds, saying why."""
    failed = {"TOTALJOBS": "timeout after 5 s"}
    values = before_first_job()
    del values["TOTALJOBS"]
    decision, _ = decide(jqueuer, plan.shared, tick(values, 2, failed=failed),
                         TargetState(last_count=2), {"kept": 1}, evaluate=must_not_run)
    assert (decision.desired, decision.changed, decision.error) == (2, False, None)
    assert decision.reason == ("hold at 2: Prometheus could not answer query TOTALJOBS: "
                               "timeout after 5 s")
    # two failures: both named, with their own reasons
    failed["AET"] = "bad_data: 1:5: parse error: unclosed left parenthesis"
    decision, userdata = decide(jqueuer, plan.shared, tick(values, 2, failed=failed),
                                TargetState(last_count=2), {"kept": 1}, evaluate=must_not_run)
    assert decision.reason == (
        "hold at 2: Prometheus could not answer query AET: bad_data: 1:5: parse error: "
        "unclosed left parenthesis; Prometheus could not answer query TOTALJOBS: timeout "
        "after 5 s")
    assert userdata == {"kept": 1}


def test_a_query_with_no_result_at_all_counts_as_not_answered(plan, jqueuer):
    values = before_first_job()
    del values["REMAININGTIME"]
    decision, _ = decide(jqueuer, plan.shared, tick(values, 1),
                         TargetState(last_count=1), None, evaluate=must_not_run)
    assert decision.reason == ("hold at 1: Prometheus could not answer query REMAININGTIME: "
                               "no answer was given")


def test_a_failed_query_the_rule_does_not_read_does_not_hold(plan, jqueuer):
    policy = replace(jqueuer, scaling_rule="m_node_count = 4")
    decision, _ = decide(policy, plan.shared,
                         tick({}, 1, failed={"TOTALJOBS": "unreachable (connection refused)"}),
                         TargetState(last_count=1), None)
    assert (decision.desired, decision.reason) == (4, "scale out 1 -> 4: the rule set "
                                                      "m_node_count to 4")


def test_evaluate_runs_the_rule_with_none_for_a_failed_query(plan, jqueuer):
    policy = replace(jqueuer, options={**jqueuer.options, "on_missing_data": "evaluate"},
                     scaling_rule="m_node_count = 1 if TOTALJOBS is None else 5\n"
                                  "print(COMPLETED)")
    values = before_first_job()
    del values["TOTALJOBS"]
    decision, _ = decide(policy, plan.shared,
                         tick(values, 2, failed={"TOTALJOBS": "HTTP 503"}),
                         TargetState(last_count=2), None)
    assert (decision.desired, decision.log) == (1, ["None"])
    assert decision.reason == ("scale in 2 -> 1: the rule set m_node_count to 1 (Prometheus "
                               "could not answer query TOTALJOBS: HTTP 503; evaluated anyway "
                               "with None; query COMPLETED returned no series: the rule saw "
                               "None)")


def test_hold_on_no_series_restores_holding_on_an_empty_answer(plan, jqueuer):
    policy = replace(jqueuer, options={**jqueuer.options,
                                       "on_missing_data": "hold_on_no_series"})
    decision, _ = decide(policy, plan.shared, tick(before_first_job(), 2),
                         TargetState(last_count=2), None, evaluate=must_not_run)
    assert decision.reason == ("hold at 2: queries JOBSFAIL, ITEMS, COMPLETED, CALC_AET "
                               "returned no series")
    # with every query answered it runs as usual
    answered = before_first_job(JOBSFAIL=0.0, ITEMS=20.0, COMPLETED=0.0, CALC_AET=0.0)
    decision, _ = decide(policy, plan.shared, tick(answered, 2),
                         TargetState(last_count=2), None)
    assert (decision.desired, decision.error) == (3, None)


def test_an_unguarded_none_is_a_rule_error_that_holds_and_says_which_query(plan, jqueuer):
    """D-nan-none: NaN reaches the rule as None (the source turns it); MiCADO passed NaN, whose
    comparison is False and silently takes the else branch. With None the comparison fails,
    the target holds and the reason names the query that had no value."""
    policy = replace(jqueuer, scaling_rule="if AET > 30:\n  m_node_count = 5\n"
                                           "else:\n  m_node_count = 0\n")
    decision, _ = decide(policy, plan.shared, tick(before_first_job(AET=None), 2),
                         TargetState(last_count=2), None)
    assert (decision.desired, decision.changed) == (2, False)
    assert decision.error is not None and "TypeError" in decision.error
    assert decision.reason.endswith("(query AET returned no series: the rule saw None)")


def test_label_queries_give_their_list_to_container_rules_too(plan):
    """D-label-queries-containers: MiCADO gave None to a container rule for `[expr, label]`;
    here it gets the list, as node rules do."""
    workload = replace(plan.policies[0], name="scalability-worker", target="jqueuer-manager",
                       target_kind="workload", hosts=["jq-server"], min_instances=1,
                       max_instances=5, queries={"IDLE": ["up == 0", "instance"]},
                       scaling_rule="m_container_count = len(IDLE) + 1\nprint(IDLE)")
    inputs = tick({"IDLE": ["10.0.0.7:9100", "10.0.0.8:9100"]})
    inputs.live_counts = {"jqueuer-manager": 1}
    decision, _ = decide(workload, plan.shared, inputs, TargetState(), None)
    assert (decision.desired, decision.log) == (3, ["['10.0.0.7:9100', '10.0.0.8:9100']"])
    # no series: an empty list, not None, and no "no series" note
    inputs.query_results = {"IDLE": []}
    decision, _ = decide(workload, plan.shared, inputs, TargetState(), None)
    assert (decision.desired, decision.reason) == (1, "hold at 1: the rule kept "
                                                      "m_container_count at 1")


def test_the_policy_type_allows_exactly_the_engines_modes():
    types = yaml.safe_load(SCALING_TYPE.read_text())["policy_types"]
    prop = types["tosca.policies.Scaling.MiCADO"]["properties"]["on_missing_data"]
    assert prop["constraints"] == [{"valid_values": list(MISSING_DATA_MODES)}]
    assert prop["default"] == MISSING_DATA_MODES[0] == "hold"
