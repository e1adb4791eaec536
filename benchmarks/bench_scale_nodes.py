"""micado.core.scale_nodes on EC2: how long ansible-runner takes to its first cloud call, and a
1-VM vs an N-VM scale-out (do the VMs start in parallel?).

    .venv/bin/python benchmarks/bench_scale_nodes.py [--vms 5 --repeats 3]

The world of tests/integration/test_cloud_node_ec2.py: moto's EC2 server and the fake
Kubernetes API on loopback, VMs "booted" by its Booter (a Node appears ~0.2 s after the
instance runs, so the wait for Ready costs about one poll of the role; held until the run's
first EC2 call, so that call is the first request moto logs). Each repeat: 0 -> 1 ->
0, then 0 -> N -> 0, timed from `ansible_runner.run()` to its return. Figures go to
build/bench/scale_nodes.json. A script, not a test: nothing fails on timing.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LABELS = {"micado.eu/node_type": "worker", "micado.eu/app": "shop"}


class FirstRequest(logging.Handler):
    """Remembers when moto's server logged its first request after `arm()`. The booter is held
    from `arm()` to that request, so the request is the playbook's."""

    def __init__(self) -> None:
        super().__init__()
        self.at: float | None = None
        self.hold: Any = None

    def arm(self, hold: Any) -> None:
        self.hold = hold
        hold.set()
        time.sleep(0.5)  # a booter request in flight is answered and logged
        self.at = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.at is None:
            self.at = time.time()
            if self.hold is not None:
                self.hold.clear()


def timed_run(world: dict[str, Any], desired: int, first: FirstRequest) -> dict[str, float]:
    from tests.integration.cloud_node_harness import run_scale

    first.arm(world["booter"].hold)
    start = time.time()
    result = run_scale(world["pdd"], world["endpoint"], world["credentials"],
                       world["kubeconfig"], desired, cloud_node_ready_poll=1)
    wall = time.time() - start
    if result.status != "successful":
        raise SystemExit(f"scale to {desired} failed: {result.status}")
    return {"wall_s": wall, "to_first_ec2_call_s": (first.at or time.time()) - start}


def main() -> None:
    sys.path.insert(0, str(REPO))
    from moto.server import ThreadedMotoServer
    from tests.fakes.kube_api import FakeKubeApi
    from tests.integration.cloud_node_harness import Booter, ec2_client, write_kubeconfig

    parser = argparse.ArgumentParser()
    parser.add_argument("--vms", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    first = FirstRequest()
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.setLevel(logging.INFO)
    werkzeug.propagate = False
    werkzeug.addHandler(first)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    figures: dict[str, list[dict[str, float]]] = {"1": [], str(args.vms): []}
    with tempfile.TemporaryDirectory() as tmp, FakeKubeApi() as kube:
        root = Path(tmp)
        credentials = root / "credentials"
        credentials.write_text("[default]\naws_access_key_id = a\naws_secret_access_key = b\n")
        world = {"pdd": root / "runner", "endpoint": f"http://{host}:{port}",
                 "credentials": credentials,
                 "kubeconfig": write_kubeconfig(root / "kubeconfig", kube.url, "t")}
        booter = Booter(ec2=ec2_client(world["endpoint"]), kube=kube,
                        server_url="https://10.1.0.1:6443", labels=LABELS)
        world["booter"] = booter
        with booter:
            for _ in range(args.repeats):
                for size in (1, args.vms):
                    figures[str(size)].append(timed_run(world, size, first))
                    timed_run(world, 0, first)
    moto.stop()
    summary = {size: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
               for size, runs in figures.items()}
    out = REPO / "build" / "bench" / "scale_nodes.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"runs": figures, "median": summary}, indent=2))
    for size, values in summary.items():
        print(f"0 -> {size} VM(s): {values['wall_s']:.1f} s wall (median of {args.repeats}), "
              f"ansible-runner start to first EC2 call {values['to_first_ec2_call_s']:.2f} s")
    print(f"figures in {out}")


if __name__ == "__main__":
    main()
