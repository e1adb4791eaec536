"""Compute nodes to node groups, edge nodes to edge entries."""

from __future__ import annotations

import pytest
from adt_text import compiled, errors_of

EC2 = """
topology_template:
  node_templates:
    vms:
      type: tosca.nodes.MiCADO.EC2.Compute
      properties:
        region_name: eu-west-1
        image_id: ami-123
        instance_type: t3.small
        security_group_ids: [sg-1]
        context:
          insert: true
          cloud_config: |
            runcmd:
              - echo hello
      interfaces:
        Occopus:
          create:
            inputs:
              endpoint: https://ec2.eu-west-1.amazonaws.com
"""


def test_a_node_group_names_the_labels_its_nodes_carry_with_the_app() -> None:
    (group,) = compiled(EC2, app_id="shop").plan.node_groups
    assert group.node_labels == {"micado.eu/node_type": "vms", "micado.eu/app": "shop"}


def test_ec2_node_group() -> None:
    (group,) = compiled(EC2).plan.node_groups
    assert group.name == "vms"
    assert group.cloud == "ec2"
    assert group.provisioning_available
    assert group.interface == "Occopus"  # accepted; only selects our EC2 provider
    assert group.endpoint == "https://ec2.eu-west-1.amazonaws.com"
    assert group.properties == {"region_name": "eu-west-1", "image_id": "ami-123",
                                "instance_type": "t3.small", "security_group_ids": ["sg-1"]}
    assert group.contextualisation.mode == "insert"
    assert "echo hello" in (group.contextualisation.cloud_config or "")
    assert (group.min_instances, group.max_instances) == (1, 1)


@pytest.mark.parametrize(
    ("context", "mode"),
    [("append: true\n          cloud_config: 'runcmd: [ls]'", "append"),
     ("cloud_config: 'runcmd: [ls]'", "overwrite")],
)
def test_context_modes(context: str, mode: str) -> None:
    body = EC2.replace("insert: true\n          cloud_config: |\n            runcmd:\n"
                       "              - echo hello", context)
    app = compiled(body)
    assert app.plan.node_groups[0].contextualisation.mode == mode
    assert any("will not join the cluster" in w.message for w in app.warnings) == (
        mode == "overwrite")


def test_context_bad_cloud_config() -> None:
    errors = errors_of(EC2.replace("runcmd:\n              - echo hello", "runcmd: [unclosed"))
    assert errors[0].startswith("topology_template.node_templates.vms.properties.context."
                                "cloud_config: not valid cloud-config YAML")


@pytest.mark.parametrize(
    ("type_name", "props", "cloud"),
    [("Azure", "resource_group: g\n        virtual_network: n\n        subnet: s\n"
               "        network_security_group: x\n        size: Standard_B2s", "azure"),
     ("GCE", "region: r\n        project: p\n        machine_type: m\n        zone: z\n"
             "        image: i\n        network: n", "gce"),
     ("OCI", "region: r\n        availability_domain: a\n        compartment_id: c\n"
             "        shape: s\n        network_security_group: n\n        subnet_id: s",
      "oci"),
     ("CloudBroker", "deployment_id: d\n        instance_type_id: i", "cloudbroker")],
)
def test_clouds_without_provider_compile_with_a_warning(type_name: str, props: str,
                                                        cloud: str) -> None:
    body = f"""
topology_template:
  node_templates:
    vms:
      type: tosca.nodes.MiCADO.{type_name}.Compute
      properties:
        {props}
"""
    app = compiled(body)
    (group,) = app.plan.node_groups
    assert group.cloud == cloud
    assert not group.provisioning_available
    (warning,) = [w for w in app.warnings if w.path[-1] == "vms"]
    assert "compute node 'vms'" in warning.message
    assert "provisioning for" in warning.message and "not available" in warning.message


def test_secrets_stay_out_of_the_plan() -> None:
    body = """
topology_template:
  node_templates:
    vms:
      type: tosca.nodes.MiCADO.Azure.Compute
      properties:
        resource_group: g
        virtual_network: n
        subnet: s
        network_security_group: x
        size: Standard_B2s
        admin_password: hunter2hunter2
"""
    (group,) = compiled(body).plan.node_groups
    assert group.properties["admin_password"] == "<redacted>"


def test_capability_bounds_and_occurrences() -> None:
    body = EC2 + """      capabilities:
        scalable:
          properties: {min_instances: 2, max_instances: 4}
"""
    (group,) = compiled(body).plan.node_groups
    assert (group.min_instances, group.max_instances) == (2, 4)
    body = EC2.replace("      type: tosca.nodes.MiCADO.EC2.Compute\n",
                       "      type: tosca.nodes.MiCADO.EC2.Compute\n"
                       "      occurrences: [0, UNBOUNDED]\n")
    (group,) = compiled(body).plan.node_groups
    assert (group.min_instances, group.max_instances) == (0, 99)


def test_edge_nodes_keep_their_key_out_of_the_plan() -> None:
    body = """
topology_template:
  node_templates:
    pi:
      type: tosca.nodes.MiCADO.Edge
      properties:
        public_ip: 192.0.2.10
        ssh_private_key: |
          -----BEGIN OPENSSH PRIVATE KEY-----
          abc
          -----END OPENSSH PRIVATE KEY-----
"""
    app = compiled(body)
    (edge,) = app.plan.edges
    assert (edge.name, edge.public_ip, edge.ssh_username) == ("pi", "192.0.2.10", "ubuntu")
    assert edge.has_ssh_private_key
    assert "PRIVATE KEY" not in str(app.plan.to_dict())


def test_generic_compute_has_no_cloud() -> None:
    body = """
topology_template:
  node_templates:
    vms:
      type: tosca.nodes.MiCADO.Compute
"""
    (error,) = errors_of(body)
    assert error.startswith("topology_template.node_templates.vms.type: "
                            "tosca.nodes.MiCADO.Compute does not say which cloud to use")
