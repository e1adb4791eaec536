"""The scripted cases run through MiCADO's Policy Keeper and our engine side by side.

Each case lists, per difference id of the README's "Deliberate differences from MiCADO:
scaling rules", the ticks at which the two sides must disagree (and every other tick must
agree).
"""

from __future__ import annotations

from parity_adt import Policy, adt
from parity_harness import FAILED, NAN, NO_SERIES, Case, Labels, Tick

G = "worker-node"
STRESSNG = "examples/micado/stressng_nova.yaml"
START = {"nodes": {G: 1}, "replicas": {"stressng": 1}}


def one_workload(rule: str, *, hosts: list[str] | None = None, groups: dict | None = None,
                 **policy: object) -> str:
    return adt(groups if groups is not None else {G: None},
               {"app": (hosts if hosts is not None else [G], Policy(rule, **policy))})


def one_group(rule: str, **policy: object) -> str:
    return adt({G: Policy(rule, **policy)}, {})


CASES: list[Case] = [
    # --- MiCADO's demos ---------------------------------------------------------------------
    Case("stressng-alerts-once-a-minute", STRESSNG, start=START,
         why="stressng demo: each alert notified once, at least 60 s apart; the same decisions",
         ticks=[Tick(0, nodes={G: 1}, alerts=[]), Tick(15), Tick(60),
                Tick(75, alerts=["node_overloaded"]), Tick(90, alerts=[]),
                Tick(105, nodes={G: 2}), Tick(120, alerts=["service_overloaded"]),
                Tick(135, alerts=[]), Tick(180, alerts=["node_overloaded"]),
                Tick(195, alerts=[]), Tick(240, alerts=["node_underloaded"]),
                Tick(255, alerts=[], nodes={G: 1}), Tick(300, alerts=["service_underloaded"]),
                Tick(315, alerts=[])]),
    Case("stressng-alerts-held", STRESSNG, start=START,
         why="stressng demo, node_overloaded firing for minutes: MiCADO acts once per "
             "notification, we act while it fires",
         ticks=[Tick(0, nodes={G: 1}, alerts=["node_overloaded"]), Tick(15), Tick(30),
                Tick(45), Tick(61), Tick(76), Tick(91, nodes={G: 2}), Tick(106), Tick(121),
                Tick(152), Tick(167)],
         differences={"D-alerts-state": [9, 10]}),
    Case("stressng-containers", STRESSNG,
         why="stressng demo: service alerts with a stable node set; underload scales in",
         ticks=[Tick(0, nodes={G: 2}, alerts=["service_overloaded"]), Tick(15, alerts=[]),
                Tick(75, alerts=["service_overloaded"]), Tick(90, alerts=[]),
                Tick(150, alerts=["service_underloaded"]), Tick(165, alerts=[])],
         start={"nodes": {G: 2}, "replicas": {"stressng": 1}}),
    Case("nginx-demo", "examples/micado/nginx_ec2.yaml",
         start={"nodes": {G: 1}, "replicas": {"nginxapp": 1}},
         why="nginx demo: queries, a dict m_userdata written by the container rule and read by "
             "the node rule",
         ticks=[Tick(0, nodes={G: 1}, queries={"REQUESTSPERCONT": 0.5, "TIME": 1000.0}),
                Tick(15, queries={"REQUESTSPERCONT": 6.0, "TIME": 1015.0}),
                Tick(75, queries={"TIME": 1075.0}), Tick(90, queries={"TIME": 1090.0}),
                Tick(150, queries={"TIME": 1150.0}), Tick(210, queries={"TIME": 1210.0}),
                Tick(270, queries={"TIME": 1270.0}), Tick(330, queries={"TIME": 1330.0}),
                Tick(345, queries={"TIME": 1345.0}),
                Tick(420, queries={"REQUESTSPERCONT": 0.2, "TIME": 1420.0})]),
    Case("cqueue-demo", "tests/data/micado/cqueue_ec2.yaml",
         start={"nodes": {G: 1}, "replicas": {"cqueue-worker": 1}},
         why="cqueue demo: ceil() of a deadline, m_node_count = 0 clamped to min, a second "
             "node group without a policy",
         ticks=[Tick(0, nodes={G: 1, "cq-server": 1},
                     queries={"ITEMS": 40.0, "REMAININGTIME": 600.0}),
                Tick(15, nodes={G: 2}), Tick(30, queries={"ITEMS": 0.0}),
                Tick(45, queries={"ITEMS": 3.0, "REMAININGTIME": -5.0}), Tick(60)]),
    Case("stressng-v07-container-only", "tests/data/micado/stressng_v07.yaml",
         start={"replicas": {"stressng": 1}},
         why="a v0.7 container-only app with a query: no node set at all",
         ticks=[Tick(0, queries={"SERVICE_CPU": 75.0}), Tick(15), Tick(30),
                Tick(45, queries={"SERVICE_CPU": 10.0}), Tick(60)]),
    Case("jqueuer-demo", "tests/data/micado/jqueuer.yaml", start={"nodes": {G: 0}},
         why="jqueuer demo: COMPLETED and JOBSFAIL have no series until jobs finish; the rule "
             "guards for None and scales the workers out; min_instances '0' is a string",
         ticks=[Tick(0, nodes={G: 0}, queries={
                    "AET": 30.0, "REMAININGTIME": 600.0, "JOBSFAIL": NO_SERIES,
                    "TOTALJOBS": 20.0, "ITEMS": NO_SERIES, "COMPLETED": NO_SERIES,
                    "CALC_AET": NO_SERIES}),
                Tick(15), Tick(30, nodes={G: 2}),
                Tick(45, queries={"COMPLETED": 5.0, "CALC_AET": 25.0, "ITEMS": 15.0}),
                Tick(60, queries={"COMPLETED": 20.0, "ITEMS": NO_SERIES,
                                  "REMAININGTIME": 200.0})]),
    # --- the README's rule styles -----------------------------------------------------------
    Case("readme-node-rule", one_group(
            "if len(m_nodes) <= m_node_count and m_time_since_node_count_changed > 60:\n"
            "    if node_overloaded:\n        m_node_count += 1\n"
            "    if node_underloaded:\n        m_node_count -= 1\n"
            "else:\n    print('Transient phase, skipping update of nodes...')\n",
            alerts=["node_overloaded", "node_underloaded"]),
         start={"nodes": {G: 1}},
         why="examples/rules/node-rule.py, alerts notified once each",
         ticks=[Tick(0, nodes={G: 1}), Tick(61, alerts=["node_overloaded"]),
                Tick(76, alerts=[], nodes={G: 2}), Tick(137, alerts=["node_underloaded"]),
                Tick(152, alerts=[])]),
    Case("deadline-queue", one_workload(
            "if ITEMS is None:\n    m_container_count = m_container_count\n"
            "elif ITEMS > 0:\n"
            "    m_container_count = min(ceil(ITEMS * AET / max(REMAINING, 1)), 10)\n"
            "else:\n    m_container_count = 1\n",
            queries={"ITEMS": "q", "REMAINING": "r"}, constants={"AET": 30}, max=10),
         start={"nodes": {G: 1}, "replicas": {"app": 1}},
         why="a deadline rule with ceil() and min() over queries",
         ticks=[Tick(0, nodes={G: 1}, queries={"ITEMS": 100.0, "REMAINING": 900.0}),
                Tick(15, queries={"ITEMS": 50.0}), Tick(30, queries={"ITEMS": 0.0})]),
    Case("userdata-between-rules", adt(
            {G: Policy("m_userdata = {'nodes': m_node_count, 'seen': len(m_nodes)}\n")},
            {"app": ([G], Policy("m_container_count = m_userdata['nodes'] * 2\n"
                                 "m_userdata['app'] = m_container_count\n", max=10))}),
         start={"nodes": {G: 2}, "replicas": {"app": 1}},
         why="m_userdata written by the node rule, read and extended by the container rule",
         ticks=[Tick(0, nodes={G: 2}), Tick(15, nodes={G: 1})]),
    Case("label-query-todrop", one_group(
            "if IDLE:\n    m_nodes_todrop = IDLE\n", queries={"IDLE": ["idle == 1", "node"]},
            max=4),
         start={"nodes": {G: 3}},
         why="an [expr, label] query in a node rule naming nodes to drop",
         ticks=[Tick(0, nodes={G: 3}, queries={"IDLE": Labels(("worker-node-2",
                                                                "worker-node-3"))}),
                Tick(15, nodes={G: 1})]),
    # --- issue 11's edge cases --------------------------------------------------------------
    Case("no-series-guarded", one_workload(
            "if LOAD is None:\n    m_container_count = 1\n"
            "elif LOAD > 80:\n    m_container_count += 1\n", queries={"LOAD": "q"}),
         start={"nodes": {G: 1}, "replicas": {"app": 2}},
         why="no series: the rule gets None (MiCADO's and ours) and guards for it",
         ticks=[Tick(0, nodes={G: 1}, queries={"LOAD": 90.0}), Tick(15, queries={
             "LOAD": NO_SERIES}), Tick(30, queries={"LOAD": 95.0})]),
    Case("query-failure-holds", one_workload(
            "if not LOAD:\n    m_container_count -= 1\n"
            "elif LOAD > 80:\n    m_container_count += 1\n", queries={"LOAD": "q"}),
         start={"nodes": {G: 1}, "replicas": {"app": 2}},
         why="Prometheus cannot answer: MiCADO's rule sees None (no load) and scales in; we "
             "hold",
         ticks=[Tick(0, nodes={G: 1}, queries={"LOAD": 90.0}), Tick(15, queries={
             "LOAD": FAILED}), Tick(30), Tick(45, queries={"LOAD": 95.0})],
         differences={"D-unanswered-holds": [1, 2, 3]}),
    Case("nan-is-none", one_workload(
            "if LOAD > 80:\n    m_container_count += 1\nelse:\n    m_container_count -= 1\n",
            queries={"LOAD": "q"}),
         start={"nodes": {G: 1}, "replicas": {"app": 2}},
         why="NaN: MiCADO's comparison is False and takes the else branch (scale in); ours "
             "gets None, the comparison fails, it holds",
         ticks=[Tick(0, nodes={G: 1}, queries={"LOAD": 90.0}), Tick(15, queries={
             "LOAD": NAN}), Tick(30, queries={"LOAD": 95.0})],
         differences={"D-nan-none": [1]}),
    Case("node-clock-1-2-3", one_group(
            "if len(m_nodes) == m_node_count and m_time_since_node_count_changed > 60 and "
            "LOAD > 80:\n    m_node_count += 1\n", queries={"LOAD": "q"}),
         start={"nodes": {G: 1}},
         why="the new node is Ready by the next tick: MiCADO keeps counting from the earlier "
             "change and adds the third node at once; our clock restarts",
         ticks=[Tick(0, nodes={G: 1}, queries={"LOAD": 90.0}), Tick(61),
                Tick(76, nodes={G: 2}), Tick(91), Tick(137), Tick(152, nodes={G: 3})],
         differences={"D-node-clock": [2, 3]}),
    Case("zero-nodes-clock", one_group(
            "if m_time_since_node_count_changed > 30 and LOAD > 0:\n    m_node_count = 1\n",
            queries={"LOAD": "q"}, min=0),
         start={"nodes": {G: 0}},
         why="a group at zero nodes: MiCADO restarts its clock every tick (never > 30), ours "
             "counts",
         ticks=[Tick(0, nodes={G: 0}, queries={"LOAD": 5.0}), Tick(15), Tick(31), Tick(46)],
         differences={"D-zero-nodes-clock": [2, 3]}),
    Case("non-whole-count", one_workload(
            "m_container_count = LOAD / 10\n", queries={"LOAD": "q"}, max=10),
         start={"nodes": {G: 1}, "replicas": {"app": 1}},
         why="a count that is not whole is truncated like int() (3.9 -> 3, -0.5 -> 0 -> min)",
         ticks=[Tick(0, nodes={G: 1}, queries={"LOAD": 39.0}), Tick(15, queries={
             "LOAD": 71.0}), Tick(30, queries={"LOAD": -5.0})]),
    Case("string-count", one_workload(
            "if LOAD > 80:\n    m_container_count = '3'\n", queries={"LOAD": "q"}),
         start={"nodes": {G: 1}, "replicas": {"app": 1}},
         why="a count given as text: MiCADO's int('3') took it, ours is an error and holds",
         ticks=[Tick(0, nodes={G: 1}, queries={"LOAD": 10.0}), Tick(15, queries={
             "LOAD": 90.0})],
         differences={"D-strict-outputs": [1]}),
    Case("numpy-functions", one_workload(
            "loads = [A, B, C]\n"
            "m_container_count = int(ceil(mean(loads) / 20)) + int(median(loads) > 50)"
            " + int(amax(loads) > 90) + int(std(loads) > 10) + int(percentile(loads, 90) > 80)"
            "\n", queries={"A": "a", "B": "b", "C": "c"}, max=10),
         start={"nodes": {G: 1}, "replicas": {"app": 1}},
         why="numpy's mean, median, amax, std, percentile on a list of numbers",
         ticks=[Tick(0, nodes={G: 1}, queries={"A": 10.0, "B": 20.0, "C": 30.0}),
                Tick(15, queries={"A": 60.0, "B": 95.0, "C": 85.0})]),
    Case("numpy-beyond-the-subset", one_workload(
            "trend = polyfit([0, 1, 2], [A, B, C], 1)[0]\n"
            "if trend > 5:\n    m_container_count += 1\n",
            queries={"A": "a", "B": "b", "C": "c"}),
         start={"nodes": {G: 1}, "replicas": {"app": 1}},
         why="a numpy function outside the common ones (polyfit): MiCADO ran it, ours names it "
             "in an error and holds",
         ticks=[Tick(0, nodes={G: 1}, queries={"A": 10.0, "B": 20.0, "C": 30.0})],
         differences={"D-numpy-subset": [0]}),
    Case("container-on-static-group", one_workload(
            "m_container_count = len(m_nodes) + m_node_count\n", max=10,
            constants={"UNUSED": 1}),
         start={"replicas": {"app": 1}},
         why="the container's host group has no scaling policy: MiCADO gave [] and 0, ours "
             "gives its Ready nodes and their number",
         ticks=[Tick(0, nodes={G: 2}), Tick(15, nodes={G: 3})],
         differences={"D-container-nodes": [0, 1]}),
    Case("container-no-host-static-group", adt(
            {G: Policy("m_node_count = m_node_count\n", max=5), "static": None},
            {"app": ([], Policy("m_container_count = len(m_nodes) * 10 + m_node_count\n",
                                max=99))}),
         start={"nodes": {G: 2}, "replicas": {"app": 1}},
         why="no host: MiCADO saw the node sets with a policy only, ours every group (its "
             "m_node_count is the last scaled group's in both)",
         ticks=[Tick(0, nodes={G: 2, "static": 1}), Tick(15, nodes={G: 2, "static": 0})],
         differences={"D-container-nodes": [0]}),
    Case("container-two-host-groups", adt(
            {"g1": Policy("m_node_count = m_node_count\n", max=5),
             "g2": Policy("m_node_count = m_node_count\n", max=5)},
            {"app": (["g2", "g1"], Policy("m_container_count = m_node_count\n", max=9))}),
         start={"nodes": {"g1": 1, "g2": 3}, "replicas": {"app": 1}},
         why="hosts [g2, g1]: m_node_count is the last host group in MiCADO's order (the "
             "policies' order: g2), m_nodes both groups",
         ticks=[Tick(0, nodes={"g1": 1, "g2": 3}), Tick(15, nodes={"g1": 1, "g2": 3})]),
    Case("rule-error-keeps-nothing", one_workload(
            "m_userdata = {'last': LOAD}\nm_container_count += 1\nx = undefined_name + 1\n",
            queries={"LOAD": "q"}, max=5),
         start={"nodes": {G: 1}, "replicas": {"app": 1}},
         why="a rule that fails after assigning: MiCADO applies what came before the failing "
             "line (count and m_userdata), ours changes nothing",
         ticks=[Tick(0, nodes={G: 1}, queries={"LOAD": 5.0}), Tick(15)],
         differences={"D-rule-error-atomic": [0, 1]}),
    Case("rule-error-other-rules-run", adt(
            {G: Policy("m_node_count = missing_name\n", max=3)},
            {"app": ([G], Policy("m_container_count = 2\n"))}),
         start={"nodes": {G: 1}, "replicas": {"app": 1}},
         why="a failing node rule does not stop the container rule, in MiCADO or here",
         ticks=[Tick(0, nodes={G: 1}), Tick(15)]),
    Case("label-query-in-container-rule", one_workload(
            "if IDLE:\n    m_container_count = len(IDLE)\nelse:\n    m_container_count = 1\n",
            queries={"IDLE": ["idle == 1", "pod"]}, max=5),
         start={"nodes": {G: 1}, "replicas": {"app": 2}},
         why="an [expr, label] query in a container rule: MiCADO gave None, ours the list",
         ticks=[Tick(0, nodes={G: 1}, queries={"IDLE": Labels(("a", "b", "c"))})],
         differences={"D-label-queries-containers": [0]}),
    Case("list-comprehension", one_workload(
            "m_container_count = 2\nbig = [x for x in [A, B] if x > 50]\n"
            "m_container_count = 2 + len(big)\n", queries={"A": "a", "B": "b"}, max=5),
         start={"nodes": {G: 1}, "replicas": {"app": 1}},
         why="a list comprehension: MiCADO's asteval refuses it (the rule stops there), ours "
             "runs it",
         ticks=[Tick(0, nodes={G: 1}, queries={"A": 60.0, "B": 70.0})],
         differences={"D-list-comprehensions": [0]}),
    Case("string-min-with-todrop", one_group(
            "if len(m_nodes) > 1:\n    m_nodes_todrop = [m_nodes[-1]['ID']]\n", min="1",
            max="3"),
         start={"nodes": {G: 2}},
         why="min_instances '1' (quoted) and m_nodes_todrop: MiCADO's comparison of a number "
             "with a string crashes the session, ours drops the node",
         ticks=[Tick(0, nodes={G: 2}), Tick(15, nodes={G: 1})],
         differences={"D-micado-crashes": [0, 1]}),
    Case("container-only-without-data", adt(
            {}, {"app": ([], Policy("if m_container_count < 3:\n"
                                    "    m_container_count += 1\n"))}),
         start={"replicas": {"app": 1}},
         why="a container-only app whose policies have no constants, queries or alerts: "
             "MiCADO's session fails on the missing data section every tick",
         ticks=[Tick(0), Tick(15), Tick(30)],
         differences={"D-micado-crashes": [0, 1, 2]}),
    Case("none-count-stops-the-session", adt(
            {G: Policy("if LOAD > 80:\n    m_node_count = None\n", queries={"LOAD": "q"})},
            {"app": ([G], Policy("m_container_count = 1 if LOAD < 50 else 3\n"))}),
         start={"nodes": {G: 1}, "replicas": {"app": 1}},
         why="a node rule that leaves m_node_count None: MiCADO's int() raised and the "
             "session ended before the container rules; here only that group holds",
         ticks=[Tick(0, nodes={G: 1}, queries={"LOAD": 10.0}), Tick(15, queries={
             "LOAD": 90.0}), Tick(30, queries={"LOAD": 10.0})],
         differences={"D-micado-crashes": [1]}),
    Case("todrop-unknown-node", one_group(
            "m_nodes_todrop = ['ghost-node']\n", max=3),
         start={"nodes": {G: 2}},
         why="m_nodes_todrop names a node that does not exist: MiCADO still counts it down",
         ticks=[Tick(0, nodes={G: 2})],
         differences={"D-todrop-existing": [0]}),
    Case("manual-kubectl-scale", one_workload(
            "if LOAD > 80 and m_container_count < 5:\n    m_container_count += 1\n",
            queries={"LOAD": "q"}, max=9),
         start={"nodes": {G: 1}, "replicas": {"app": 1}},
         why="someone runs kubectl scale --replicas=4: ours counts from the live replicas, "
             "MiCADO from its own last decision",
         ticks=[Tick(0, nodes={G: 1}, queries={"LOAD": 90.0}), Tick(15, replicas={"app": 4}),
                Tick(30), Tick(45, queries={"LOAD": 10.0})],
         differences={"D-live-count": [1, 2, 3]}),
    Case("alert-named-in-a-comment", adt(
            {G: Policy("# hot is the container rule's business\nm_node_count = m_node_count\n",
                       alerts=["hot"])},
            {"app": ([G], Policy("if hot:\n    m_container_count += 1\n", max=5))}),
         start={"nodes": {G: 1}, "replicas": {"app": 1}},
         why="MiCADO gave a rule the alerts whose names occur anywhere in its text, and used "
             "them up: a comment in the node rule hid the alert from the container rule",
         ticks=[Tick(0, nodes={G: 1}, alerts=["hot"]), Tick(15, alerts=[])],
         differences={"D-alerts-state": [0, 1]}),
    Case("todrop-by-address", one_group(
            "if len(m_nodes) > 1:\n    m_nodes_todrop = [m_nodes[0]['Addr']]\n", max=3),
         start={"nodes": {G: 3}},
         why="m_nodes_todrop by address (MiCADO's Terraform handler): the same node dropped",
         ticks=[Tick(0, nodes={G: 3}), Tick(15, nodes={G: 2}), Tick(30, nodes={G: 1})]),
    Case("counts-out-of-bounds", adt(
            {G: Policy("m_node_count = LOAD\n", min=2, max=4, queries={"LOAD": "q"})},
            {"app": ([G], Policy("m_container_count = LOAD * 2 - 4\n", min=1, max=6))}),
         start={"nodes": {G: 5}, "replicas": {"app": 9}},
         why="sizes outside min..max, at the start and from the rules, are clamped alike",
         ticks=[Tick(0, nodes={G: 5}, queries={"LOAD": 9.0}), Tick(15, queries={"LOAD": 0.0}),
                Tick(30, queries={"LOAD": 3.0})]),
    Case("alert-read-by-two-rules", adt(
            {G: Policy("if hot and len(m_nodes) == m_node_count:\n    m_node_count += 1\n",
                       alerts=["hot"])},
            {"app": ([G], Policy("if hot:\n    m_container_count += 1\n", max=5))}),
         start={"nodes": {G: 1}, "replicas": {"app": 1}},
         why="one alert read by the node rule and the container rule: MiCADO's node rule "
             "consumes it first",
         ticks=[Tick(0, nodes={G: 1}, alerts=["hot"]), Tick(15, alerts=[])],
         differences={"D-alerts-state": [0, 1]}),
]
