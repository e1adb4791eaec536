"""Scaling policies: constants templated in, namespaces, bounds, the rule checked at compile."""

from __future__ import annotations

from adt_text import compiled, errors_of

APP = """
topology_template:
  node_templates:
    web:
      type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
      properties:
        image: nginx:1.25
      requirements:
        - host: vms
    vms:
      type: tosca.nodes.MiCADO.Nova.Compute
      properties:
        image_id: img
        project_id: proj
        flavor_name: m1.small
      interfaces:
        Terraform:
          create:
            inputs:
              endpoint: https://keystone.example:5000/v3
  policies:
    - scalability:
        type: tosca.policies.Scaling.MiCADO
        targets: [vms]
        properties:
          constants:
            MAXNODES: 4
            TH: '60'
            NAME: vms
          queries:
            LOAD: 'avg(node_load1{node=~"{{NAME}}.*"})'
            TAGS: ['kube_node_info{node=~"{{ NAME }}.*"}', node]
          alerts:
            - alert: overloaded
              expr: 'avg(rate(x[1m])) * 100 > {{TH}}'
              for: 1m
          sources: ['exporter.default.svc:9100']
          min_instances: 1
          max_instances: '{{MAXNODES}}'
          scaling_rule: |
            if overloaded:
              m_node_count += 1
    - scalability:
        type: tosca.policies.Scaling.MiCADO
        targets: [web]
        properties:
          min_instances: 1
          max_instances: '{{MAXNODES}}'
          scaling_rule: |
            if LOAD is not None and LOAD > 2:
              m_container_count += 1
"""


def _policy(app, target):  # type: ignore[no-untyped-def]
    return next(p for p in app.plan.policies if p.target == target)


def test_constants_are_templated_everywhere() -> None:
    app = compiled(APP)
    vms = _policy(app, "vms")
    assert vms.max_instances == 4
    assert vms.queries["LOAD"] == 'avg(node_load1{node=~"vms.*"})'
    assert vms.queries["TAGS"] == ['kube_node_info{node=~"vms.*"}', "node"]
    assert vms.alerts[0]["expr"] == "avg(rate(x[1m])) * 100 > 60"
    assert vms.sources == ["exporter.default.svc:9100"]
    assert vms.target_kind == "node_group"
    group = app.plan.node_groups[0]
    assert (group.min_instances, group.max_instances) == (1, 4)


def test_stack_is_the_app_id() -> None:
    body = APP.replace("avg(node_load1", "{{stack}}_avg(node_load1")
    assert _policy(compiled(body, app_id="shop"), "vms").queries["LOAD"].startswith("shop_avg")


def test_merged_namespace_is_kept_and_warned() -> None:
    app = compiled(APP)
    web = _policy(app, "web")
    assert web.target_kind == "workload"
    assert web.hosts == ["vms"]
    assert web.max_instances == 4  # MAXNODES comes from the other policy, as in MiCADO
    assert web.queries == {}  # its own namespace stays its own...
    assert web.borrowed == ["LOAD"]  # ...and what it reads from the merged one is recorded
    assert "LOAD" in app.plan.shared.queries
    assert any("reads LOAD defined only by another policy" in w.message for w in app.warnings)


def test_undefined_constant() -> None:
    errors = errors_of(APP.replace("'{{MAXNODES}}'\n          scaling_rule: |\n            if LOAD",
                                   "'{{MAXPODS}}'\n          scaling_rule: |\n            if LOAD"))
    assert errors == ["topology_template.policies[1].scalability.properties.max_instances: "
                      "{{MAXPODS}} is not a constant of this app"]


def test_rule_syntax_error_names_policy_and_line() -> None:
    errors = errors_of(APP.replace("              m_node_count += 1",
                                   "              print 'scaling up'"))
    assert len(errors) == 1
    assert errors[0].startswith(
        "topology_template.policies[0].scalability.properties.scaling_rule: line 2: ")
    assert "print 'scaling up'" in errors[0]


def test_bounds_must_be_numbers_in_order() -> None:
    errors = errors_of(APP.replace("min_instances: 1\n          max_instances: '{{MAXNODES}}'\n"
                                   "          scaling_rule: |\n            if overloaded",
                                   "min_instances: 5\n          max_instances: two\n"
                                   "          scaling_rule: |\n            if overloaded"))
    assert errors == ["topology_template.policies[0].scalability.properties.max_instances: must "
                      "be a whole number >= 0, got 'two'"]
    errors = errors_of(APP.replace("      min_instances: 1\n          max_instances: '{{MAXNODES}}'"
                                   "\n          scaling_rule: |\n            if overloaded",
                                   "      min_instances: 6\n          max_instances: '{{MAXNODES}}'"
                                   "\n          scaling_rule: |\n            if overloaded"))
    assert errors == ["topology_template.policies[0].scalability.properties.max_instances: 4 is "
                      "below min_instances 6"]


def test_occurrences_override_policy_bounds() -> None:
    body = APP.replace("    vms:\n      type: tosca.nodes.MiCADO.Nova.Compute\n",
                       "    vms:\n      type: tosca.nodes.MiCADO.Nova.Compute\n"
                       "      occurrences: [2, 3]\n")
    app = compiled(body)
    assert (_policy(app, "vms").min_instances, _policy(app, "vms").max_instances) == (2, 3)
    assert any("override the policy's min/max" in w.message for w in app.warnings)


def test_two_policies_on_one_target() -> None:
    errors = errors_of(APP.replace("targets: [web]", "targets: [vms]"))
    assert errors == ["topology_template.policies[1].scalability.targets: 'vms' is already scaled "
                      "by the policy at topology_template.policies[0].scalability"]


def test_bad_queries_alerts_sources() -> None:
    body = (APP.replace("TAGS: [", "TAGS: [1, ")
            .replace("for: 1m", "for: 1m\n              severity: high")
            .replace("'exporter.default.svc:9100'", "'exporter'"))
    errors = errors_of(body)
    assert any(e.startswith("topology_template.policies[0].scalability.properties.queries.TAGS:")
               for e in errors)
    assert ("topology_template.policies[0].scalability.properties.alerts[0].severity: unknown "
            "field of a Prometheus alert rule") in errors
    assert ("topology_template.policies[0].scalability.properties.sources[0]: 'exporter' is not "
            "a host:port target") in errors


def test_inline_policy_type_defaults_are_used() -> None:
    body = APP + """
policy_types:
  my.Scaling:
    derived_from: tosca.policies.Scaling.MiCADO
    properties:
      scaling_rule:
        type: string
        default: |
          m_node_count = 2
""".replace("", "")
    body = body.replace("type: tosca.policies.Scaling.MiCADO\n        targets: [vms]",
                        "type: my.Scaling\n        targets: [vms]")
    body = body.replace("          scaling_rule: |\n            if overloaded:\n"
                        "              m_node_count += 1\n", "")
    assert _policy(compiled(body), "vms").scaling_rule == "m_node_count = 2\n"


def test_unplaced_workload_rule_sees_every_node_group() -> None:
    app = compiled(APP.replace("      requirements:\n        - host: vms\n", ""))
    assert _policy(app, "web").hosts == ["vms"]
    assert app.plan.workloads[0].hosts == []


def test_rule_with_a_null_byte_and_an_old_escape() -> None:
    errors = errors_of(APP.replace("scaling_rule: |\n            if overloaded:\n"
                                   "              m_node_count += 1\n",
                                   'scaling_rule: "m_node_count += 1\\0"\n'))
    assert errors == ["topology_template.policies[0].scalability.properties.scaling_rule: "
                      "cannot be parsed: source code string cannot contain null bytes"]
    app = compiled(APP.replace("              m_node_count += 1",
                               "              m_node_count += len('\\\\d')"))
    assert app.plan.policies


def test_unknown_target_is_reported_once() -> None:
    errors = errors_of(APP.replace("targets: [web]", "targets: [nope]"))
    assert errors == ["topology_template.policies[1].scalability.targets[0]: no node template "
                      "named 'nope'"]
