"""Alert-to-scale latency: from an alert firing in Prometheus to the scale call reaching Kubernetes.

Issue 4's target: the time from an alert firing in Prometheus to the scale call is at most one
tick plus 1 s.

    .venv/bin/python benchmarks/bench_alert_latency.py [--tick 5 --repeats 10]

Starts, each in its own process: the fake Kubernetes API server (which timestamps every request
it receives), a real Prometheus (scrape and evaluation interval 1 s) and `micado controller run`
with one app: a Deployment `web` scaled on the alert `web_overloaded` (`web_load > 0.8`) and
the query `max(web_load)`, without cooldown. The policy's `sources:` names an exporter in this
process, so the controller writes the file-SD target itself. Each repeat waits a random part of
a tick (so the alert falls anywhere in the tick cycle), sets `web_load` high, polls Prometheus'
/api/v1/alerts every 50 ms for the first `firing` (and reads the alert's own `activeAt`), takes
the arrival time of the PATCH .../deployments/web/scale at the fake, then sets the load low and
waits until the app is back at one replica and the alert is inactive.
Figures go to build/bench/alert_latency.json.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from controller_harness import (
    BUILD,
    Exporter,
    Processes,
    fresh_dir,
    kube_requests,
    machine,
    save_json,
    start_daemon,
    start_fake_kube,
    start_prometheus,
    wait_until,
)

APP_ID = "web-latency"
ALERT = "web_overloaded"
HIGH, LOW = 0.95, 0.1
POLL = 0.05

ADT = """\
tosca_definitions_version: tosca_simple_yaml_1_2

imports:
  - https://raw.githubusercontent.com/micado-scale/tosca/develop/micado_types.yaml

description: alert latency benchmark (tests/data/controller/web.yaml without the node group)

topology_template:
  node_templates:
    web:
      type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
      properties:
        image: nginx:1.25
        ports:
          - port: 8080

  policies:
    - scalability:
        type: tosca.policies.Scaling.MiCADO
        targets: [ web ]
        properties:
          sources: [ "{exporter}" ]
          min_instances: 1
          max_instances: 5
          alerts:
            - alert: web_overloaded
              expr: 'web_load{{job="micado-apps"}} > 0.8'
              for: 0s
          queries:
            LOAD: 'max(web_load{{job="micado-apps"}})'
          scaling_rule: |
            if web_overloaded:
              m_container_count += 1
            elif LOAD < 0.2:
              m_container_count -= 1
"""


class Load:
    """The exporter's one gauge, `web_load`, set by the benchmark."""

    def __init__(self, value: float) -> None:
        self.value = value

    def render(self) -> str:
        return f"# TYPE web_load gauge\nweb_load {self.value}\n"


def parse_time(text: str) -> float:
    """An RFC 3339 time from Prometheus (nanoseconds, 'Z') as a Unix time."""
    text = text.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # keep microseconds: fromisoformat takes at most six digits
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits):]}"
    return datetime.fromisoformat(text).timestamp()


def alert_state(prometheus_url: str) -> tuple[str | None, float | None]:
    """The state of the app's alert in Prometheus (None: inactive) and its activeAt."""
    alerts = requests.get(f"{prometheus_url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    for alert in alerts:
        labels = alert.get("labels") or {}
        if labels.get("alertname") == ALERT and labels.get("micado_app") == APP_ID:
            active = alert.get("activeAt")
            return alert.get("state"), parse_time(active) if active else None
    return None, None


def replicas(kube_url: str) -> int | None:
    obj = requests.get(f"{kube_url}/apis/apps/v1/namespaces/default/deployments/web",
                       timeout=5).json()
    return (obj.get("spec") or {}).get("replicas")


def one_sample(load: Load, prometheus_url: str, kube_url: str, tick: float,
               rng: random.Random) -> dict[str, Any]:
    """Set the load high once; when the alert fired and when the scale call arrived."""
    time.sleep(rng.uniform(0, tick))
    since, _ = kube_requests(kube_url, since=10**9)
    load.value = HIGH
    set_at = time.time()

    def firing() -> tuple[float, float | None] | None:
        state, active_at = alert_state(prometheus_url)
        return (time.time(), active_at) if state == "firing" else None

    fired_at, active_at = wait_until(firing, 30, POLL, "the alert to fire")

    def scaled() -> float | None:
        _, rows = kube_requests(kube_url, since=since, method="PATCH",
                                contains="/deployments/web/scale")
        return rows[0][2] if rows else None

    scale_at = wait_until(scaled, 3 * tick + 10, POLL, "the scale call")
    load.value = LOW
    scaled_to = replicas(kube_url)
    wait_until(lambda: replicas(kube_url) == 1 and alert_state(prometheus_url)[0] is None,
               10 * tick + 30, 0.2, "the app to scale back to 1")
    return {
        "load_set_at": set_at,
        "firing_seen_at": fired_at,
        "active_at": active_at,
        "scale_call_at": scale_at,
        "scaled_to": scaled_to,
        "latency_from_firing": scale_at - fired_at,
        "latency_from_active_at": None if active_at is None else scale_at - active_at,
        "load_to_firing": fired_at - set_at,
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Start everything, submit the app, take `args.repeats` samples; the figures."""
    if shutil.which("prometheus") is None:
        raise SystemExit("bench_alert_latency needs a real Prometheus (Debian package "
                         "prometheus): the fake one has no scrape or rule evaluation to time")
    work = fresh_dir(BUILD / "work" / "alert_latency")
    load = Load(LOW)
    rng = random.Random(args.seed)
    samples = []
    with Processes() as procs, Exporter(load.render) as exporter:
        kube_url = start_fake_kube(procs, work)
        prometheus = start_prometheus(procs, work, scrape_interval="1s",
                                      evaluation_interval="1s")
        daemon = start_daemon(procs, work, kube_url=kube_url, prometheus=prometheus,
                              tick=args.tick)
        daemon.submit(ADT.format(exporter=exporter.address), APP_ID)

        def ready() -> bool:
            query = requests.get(f"{prometheus.url}/api/v1/query",
                                 params={"query": 'web_load{job="micado-apps"}'}, timeout=5)
            rules = requests.get(f"{prometheus.url}/api/v1/rules", timeout=5).json()
            loaded = any(g["name"] == f"micado-{APP_ID}" for g in rules["data"]["groups"])
            return bool(query.json()["data"]["result"]) and loaded

        wait_until(ready, 60, 0.2, "Prometheus to scrape the exporter and load the rule")
        print(f"controller pid {daemon.pid}, tick {args.tick:g} s; Prometheus scrapes the "
              f"exporter; {args.repeats} samples", flush=True)
        for n in range(1, args.repeats + 1):
            sample = one_sample(load, prometheus.url, kube_url, args.tick, rng)
            samples.append(sample)
            print(f"  {n:2}: firing -> scale call {sample['latency_from_firing']:6.3f} s "
                  f"(from activeAt {sample['latency_from_active_at']:6.3f} s; load -> firing "
                  f"{sample['load_to_firing']:.3f} s)", flush=True)
        if daemon.process.poll() is not None:
            raise RuntimeError(f"the controller died during the run; see {daemon.log}")
    latencies = [s["latency_from_firing"] for s in samples]
    from_active = [s["latency_from_active_at"] for s in samples
                   if s["latency_from_active_at"] is not None]
    target = args.tick + 1.0
    return {
        "benchmark": "alert_latency",
        "settings": {"tick": args.tick, "repeats": args.repeats, "seed": args.seed,
                     "prometheus_scrape_and_eval_interval": 1.0, "poll_interval": POLL},
        "machine": machine(),
        "samples": samples,
        "latency_from_firing": {"median": statistics.median(latencies), "max": max(latencies),
                                "min": min(latencies)},
        "latency_from_active_at": {"median": statistics.median(from_active),
                                   "max": max(from_active), "min": min(from_active)}
        if from_active else None,
        "target_seconds": target,
        "met": max(latencies) <= target,
    }


def report(result: dict[str, Any]) -> str:
    """Each sample, then median and max against the target."""
    tick = result["settings"]["tick"]
    target = result["target_seconds"]
    lines = [f"alert -> scale call latency, tick {tick:g} s, target <= {target:g} s "
             f"(one tick + 1 s)", "",
             f"{'#':>3} {'firing->scale':>14} {'activeAt->scale':>16} {'load->firing':>13}"]
    for n, s in enumerate(result["samples"], 1):
        active = s["latency_from_active_at"]
        lines.append(f"{n:>3} {s['latency_from_firing']:>13.3f}s "
                     f"{'' if active is None else f'{active:.3f}s':>16} "
                     f"{s['load_to_firing']:>12.3f}s")
    firing = result["latency_from_firing"]
    lines += ["", f"firing -> scale call: median {firing['median']:.3f} s, max "
                  f"{firing['max']:.3f} s, min {firing['min']:.3f} s: target "
                  f"{'met' if result['met'] else 'NOT met'}"]
    active = result["latency_from_active_at"]
    if active:
        lines.append(f"activeAt -> scale call: median {active['median']:.3f} s, max "
                     f"{active['max']:.3f} s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tick", type=float, default=5.0, help="tick_seconds of the daemon")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1, help="seed of the random waits")
    args = parser.parse_args()
    result = measure(args)
    path = save_json("alert_latency", result)
    print()
    print(report(result))
    print(f"\nfigures saved to {path}")


if __name__ == "__main__":
    main()
