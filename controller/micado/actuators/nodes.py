"""The node-group actuator interface: how the loop hands VM work to whoever does it.

The loop records every node-group decision as an operation in the store *before* handing it
over (`Store.begin_operation`), so a crash never loses or repeats one. An actuator starts the
work (`start`) and later reports it finished (`poll`); `describe` and `groups` say what it is
doing for `micado status`, and `close` stops its work at shutdown (the operations stay pending).
`micado.actuators.node_runner.AnsibleNodeActuator` runs playbooks through ansible-runner;
until one is configured, `UnconfiguredNodeActuator` keeps every operation pending and says
why, so node decisions are computed, recorded and shown, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from micado.adt.model import NodeGroup
from micado.control.store import Operation


@dataclass(frozen=True)
class NodeResult:
    """A finished operation: `error` is None on success; `nodes` is None when the count is
    unknown (the run failed or was superseded); `instances` as the playbook reported them."""

    nodes: int | None
    error: str | None = None
    instances: list[dict[str, Any]] = field(default_factory=list)


class NodeActuator(Protocol):
    name: str
    configured: bool

    def start(self, op: Operation, group: NodeGroup | None, drop: list[str]) -> None:
        """Begin resizing `op.group` to `op.desired` (dropping `drop` first); must not block.
        `group` is None when the group left the app (its VMs are being removed)."""

    def poll(self, op: Operation) -> NodeResult | None:
        """The result once the operation has finished; None while it is still running."""

    def describe(self, op: Operation) -> str | None:
        """Why a pending operation is not finished yet (running, queued, backing off)."""

    def groups(self, app_id: str) -> list[dict[str, Any]]:
        """Per node group of the app: the operation in flight, the last runner event, backoff."""

    def remove_group(self, app_id: str, group: str, spec: NodeGroup) -> None:
        """Remove every VM of a deleted app's group (no operation: they went with the app)."""

    def close(self) -> None:
        """Stop at shutdown: cancel what runs; its operations stay pending for the next start."""


class UnconfiguredNodeActuator:
    """No VM backend: operations stay pending, with this reason shown in the status."""

    name = "none"
    configured = False
    reason = "no node actuator is configured: the operation is recorded, not carried out"

    def start(self, op: Operation, group: NodeGroup | None, drop: list[str]) -> None:
        return None

    def poll(self, op: Operation) -> NodeResult | None:
        return None

    def describe(self, op: Operation) -> str | None:
        return self.reason

    def groups(self, app_id: str) -> list[dict[str, Any]]:
        return []

    def remove_group(self, app_id: str, group: str, spec: NodeGroup) -> None:
        return None

    def close(self) -> None:
        return None
