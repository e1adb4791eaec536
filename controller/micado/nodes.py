"""The node-group actuator interface: how the loop hands VM work to whoever does it.

The loop records every node-group decision as an operation in the store *before* handing it
over (`Store.begin_operation`), so a crash never loses or repeats one. An actuator starts the
work (`start`) and later reports it finished (`poll`). Running playbooks through ansible-runner
is a separate piece of work; until an actuator is configured, `UnconfiguredNodeActuator`
keeps every operation pending and says why, so node decisions are computed, recorded and
shown, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .adt.model import NodeGroup
from .store import Operation


@dataclass(frozen=True)
class NodeResult:
    """A finished operation: `error` is None on success."""

    nodes: int
    error: str | None = None


class NodeActuator(Protocol):
    name: str
    configured: bool

    def start(self, op: Operation, group: NodeGroup | None, drop: list[str]) -> None:
        """Begin resizing `op.group` to `op.desired` (dropping `drop` first); must not block.
        `group` is None when the group left the app (its VMs are being removed)."""

    def poll(self, op: Operation) -> NodeResult | None:
        """The result once the operation has finished; None while it is still running."""


class UnconfiguredNodeActuator:
    """No VM backend: operations stay pending, with this reason shown in the status."""

    name = "none"
    configured = False
    reason = "no node actuator is configured: the operation is recorded, not carried out"

    def start(self, op: Operation, group: NodeGroup | None, drop: list[str]) -> None:
        return None

    def poll(self, op: Operation) -> NodeResult | None:
        return None
