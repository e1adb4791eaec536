"""`micado controller run`: wires the store, Prometheus, Kubernetes, the loop and the REST API
into one asyncio process, and stops it cleanly.

SIGTERM or SIGINT: the API stops accepting requests, no new tick starts, the ticks in progress
finish (each writes its state in one transaction) and the store is closed; exit code 0. A
`kill -9` loses at most the tick in progress, which the next start redoes from the store.
Node-group runs in progress (ansible-runner) are cancelled at a clean stop; their operations
stay pending and run again at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from micado.actuators.kubernetes import Cluster, ClusterError
from micado.actuators.node_runner import AnsibleNodeActuator
from micado.actuators.nodes import NodeActuator, UnconfiguredNodeActuator
from micado.api.auth import TokenError, ensure_token
from micado.api.rest import create_api
from micado.control.apps import AppManager
from micado.control.config import ControllerConfig
from micado.control.loop import ControlLoop
from micado.control.node_reconciler import NodeReconciler
from micado.control.store import Store, StoreError
from micado.control.telemetry import Telemetry
from micado.sources.prometheus import PrometheusSource, RuleFiles, ScrapeTargets

log = logging.getLogger("micado.controller")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
RECONCILE_SECONDS = 10.0
RETENTION_SECONDS = 3600.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run(config: ControllerConfig) -> int:
    """Run the controller until SIGTERM/SIGINT; the process exit code."""
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        token = ensure_token(config.token_file)
        # the state (ADTs may carry cloud credentials) is the controller's alone
        Path(config.state.parent).mkdir(mode=0o700, parents=True, exist_ok=True)
        for directory in (config.prometheus.rules_dir, config.prometheus.targets_dir):
            Path(directory).mkdir(parents=True, exist_ok=True)
        store = Store(config.state)
    except (TokenError, OSError, StoreError) as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    # lazy: until the kubeconfig works (k3s still starting), apps hold and say why
    cluster = Cluster.from_kubeconfig(
        str(config.kubernetes.kubeconfig) if config.kubernetes.kubeconfig else None,
        config.kubernetes.context, lazy=True, attempts=config.kubernetes.attempts,
        timeout=config.kubernetes.timeout)
    try:
        cluster.api  # noqa: B018 - read it now to log a problem at start
    except ClusterError as exc:
        log.warning("Kubernetes is not available yet (%s); retrying at every use", exc.message)
    prometheus = PrometheusSource(config.prometheus.url, config.prometheus.timeout)
    telemetry = Telemetry()
    nodes: NodeActuator = UnconfiguredNodeActuator()
    runner: AnsibleNodeActuator | None = None
    if config.nodes is not None:
        try:
            nodes = runner = AnsibleNodeActuator(config.nodes, store,
                                                 Path(config.state).parent)
        except OSError as exc:
            log.error("node actuator: cannot create its data directory: %s", exc)
            store.close()
            return EXIT_CONFIG
        log.info("node groups are run by ansible-runner (playbook %s)", config.nodes.playbook)
    loop = ControlLoop(store, prometheus, cluster, nodes, telemetry,
                       default_tick=config.tick_seconds, rule_timeout=config.rule_timeout)
    reconciler = None
    if runner is not None and config.nodes is not None:
        reconciler = NodeReconciler(store, cluster, runner, loop,
                                    cloud_every=config.nodes.reconcile_seconds)
    manager = AppManager(store, cluster, prometheus, RuleFiles(config.prometheus.rules_dir),
                         ScrapeTargets(config.prometheus.targets_dir), nodes, loop,
                         default_tick=config.tick_seconds)
    try:
        return asyncio.run(_serve(config, token, store, manager, loop, telemetry, reconciler))
    finally:
        nodes.close()  # cancels the runs in progress; their operations stay pending
        store.close()
        prometheus.close()
        cluster.close()
        log.info("stopped")


async def _serve(config: ControllerConfig, token: str, store: Store, manager: AppManager,
                 loop: ControlLoop, telemetry: Telemetry,
                 reconciler: NodeReconciler | None) -> int:
    stop = asyncio.Event()
    aloop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        aloop.add_signal_handler(signum, stop.set)
    api = create_api(manager, telemetry, token)
    server = _Server(uvicorn.Config(api, host=config.listen_host, port=config.listen_port,
                                    log_level=config.log_level, access_log=False,
                                    lifespan="off", server_header=False))
    await asyncio.to_thread(manager.reconcile)
    tasks = {
        "api": asyncio.create_task(_guard(server.serve())),
        "loop": asyncio.create_task(loop.run(stop)),
        "reconcile": asyncio.create_task(_every(RECONCILE_SECONDS, manager.reconcile, stop)),
        "retention": asyncio.create_task(_every(
            RETENTION_SECONDS, lambda: store.prune_events(
                config.events.max_age_days * 86400, config.events.max_rows), stop)),
    }
    if reconciler is not None:  # at once (the cloud listed), then every few seconds
        tasks["nodes"] = asyncio.create_task(_every(RECONCILE_SECONDS, reconciler.run, stop,
                                                    first=True))
    log.info("controller listening on http://%s:%s (state %s, Prometheus %s)",
             config.listen_host, config.listen_port, config.state, config.prometheus.url)
    stop_task = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({stop_task, tasks["api"], tasks["loop"]},
                                 return_when=asyncio.FIRST_COMPLETED)
    code = EXIT_OK
    if stop_task not in done:  # the API server or the loop ended on its own: a failure
        log.error("the %s stopped unexpectedly; shutting down",
                  "API server" if tasks["api"] in done else "control loop")
        code = EXIT_FAILED
    log.info("stopping: finishing the ticks in progress")
    stop.set()
    server.should_exit = True
    results = await asyncio.gather(*tasks.values(), return_exceptions=True)
    for name, result in zip(tasks, results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            log.error("%s failed: %s", name, result)
            code = EXIT_FAILED
    stop_task.cancel()
    return code


async def _guard(serving: object) -> None:
    """uvicorn exits the process (SystemExit) when it cannot bind; make that a failure."""
    try:
        await serving  # type: ignore[misc]
    except SystemExit as exc:
        raise RuntimeError(f"the API server could not start (exit {exc.code})") from None


async def _every(seconds: float, job: object, stop: asyncio.Event, *,
                 first: bool = False) -> None:
    """Run a blocking `job` in a thread every `seconds` until `stop` (errors logged); at
    once too when `first`."""
    while not stop.is_set():
        if not first:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=seconds)
        first = False
        if stop.is_set():
            return
        try:
            await asyncio.to_thread(job)  # type: ignore[arg-type]
        except Exception:
            log.exception("periodic job failed")
