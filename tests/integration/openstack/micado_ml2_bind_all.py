"""An ML2 mechanism driver that binds every port at once, for Neutron in the test cloud.

Copied into the OpenStack test virtualenv (registered as the entry point `micado_bind_all`) by
tests/integration/openstack_venv.py. Why it exists: Nova's fake hypervisor still asks Neutron to
bind each server's port to its host, and Neutron's real drivers bind only where an L2 agent
(Open vSwitch, OVN, ...) runs, which needs a data plane this machine cannot give a test. Without
a driver that binds, the port ends `binding_failed` and the server goes ERROR. Everything else
(networks, subnets, IPAM, ports, security groups, quotas) is real Neutron. Runs inside Neutron's
process; it imports neutron_lib, which only that virtualenv has.
"""

from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class BindAllMechanismDriver(api.MechanismDriver):
    """Binds the first segment of every port, with no agent, as an ACTIVE `ovs` port."""

    def initialize(self) -> None:
        """Nothing to set up: no agent, no backend."""

    def bind_port(self, context: api.PortContext) -> None:
        for segment in context.segments_to_bind:
            context.set_binding(segment[api.ID], portbindings.VIF_TYPE_OVS,
                                {portbindings.CAP_PORT_FILTER: False}, status="ACTIVE")
            return
