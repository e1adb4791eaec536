"""Controller load: N apps with P policies each at one tick, CPU and memory of the daemon.

Issue 4's target: 200 apps with 5 policies each at a 5 s tick use under half a core, and the
daemon's resident memory stays under 150 MB at that load.

    .venv/bin/python benchmarks/bench_controller_load.py [--apps 200 --policies 5 --tick 5
                                                         --seconds 60]

Starts, each in its own process (so their CPU is not the controller's): the fake Kubernetes API
server, a real Prometheus (the fake Prometheus API when the binary is missing, said in the
report) and `micado controller run`. Each app is an ADT with P Deployments, each scaled by its
own MiCADO-style policy: one PromQL query and one alert on a per-app, per-Deployment series of
an exporter in this process (a slow sine wave, so some alerts fire and some targets scale), a
rule with constants and `m_userdata`. Apps are submitted through the REST API. After the last
submission and a warm-up of two ticks, the daemon is measured for `--seconds`: CPU of the daemon
and all its descendants (the rule sandbox workers) from /proc, RSS sampled every
0.5 s, and the ticks it did (micado_tick_seconds_count) against apps * seconds / tick.
Figures go to build/bench/controller_load.json.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from controller_harness import (
    BUILD,
    Exporter,
    Processes,
    cpu_seconds,
    fresh_dir,
    kube_requests,
    machine,
    rss_mb,
    save_json,
    start_daemon,
    start_fake_kube,
    start_prometheus,
    tree_pss_mb,
    tree_rss_mb,
)

TARGET_CORES = 0.5
TARGET_RSS_MB = 150.0
LOAD_METRIC = "bench_load"
WAVE_PERIOD = 600.0  # seconds of one load cycle per series (default)

POLICY = """\
    - scalability:
        type: tosca.policies.Scaling.MiCADO
        targets: [ {app}-svc-{i} ]
        properties:
          constants:
            MAXLOAD: 0.8
            MINLOAD: 0.2
            MAXCONT: 5
            MININTERVAL: 30
          min_instances: 1
          max_instances: '{{{{MAXCONT}}}}'
          queries:
            LOAD{i}: 'avg({metric}{{app="{{{{stack}}}}",deployment="svc-{i}"}})'
          alerts:
            - alert: svc{i}_overloaded
              expr: '{metric}{{app="{{{{stack}}}}",deployment="svc-{i}"}} > {{{{MAXLOAD}}}}'
              for: 0s
          scaling_rule: |
            if m_userdata is None:
              m_userdata = {{}}
            last = m_userdata.get('svc-{i}', 0)
            if svc{i}_overloaded and m_container_count < MAXCONT:
              m_container_count += 1
              m_userdata['svc-{i}'] = time.time()
            elif LOAD{i} < MINLOAD and m_container_count > 1 and time.time() - last > MININTERVAL:
              m_container_count -= 1
              m_userdata['svc-{i}'] = time.time()
"""

DEPLOYMENT = """\
    {app}-svc-{i}:
      type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
      properties:
        image: nginx:1.27
        env:
          - name: SERVICE
            value: svc-{i}
        resources:
          requests:
            cpu: 100m
            memory: 64Mi
"""


def make_adt(app: str, policies: int) -> str:
    """One app: `policies` Deployments (named after the app, as two apps may not own one
    object), each with its own scaling policy. Queries and alerts name the app through
    `{{stack}}`, so every app's PromQL differs."""
    head = ("tosca_definitions_version: tosca_simple_yaml_1_2\n\n"
            "imports:\n  - https://raw.githubusercontent.com/micado-scale/tosca/develop/"
            "micado_types.yaml\n\n"
            "description: controller load benchmark app\n\n"
            "topology_template:\n  node_templates:\n")
    nodes = "".join(DEPLOYMENT.format(i=i, app=app) for i in range(1, policies + 1))
    rules = "".join(POLICY.format(i=i, app=app, metric=LOAD_METRIC) for i in range(1, policies + 1))
    return head + nodes + "\n  policies:\n" + rules


def app_ids(count: int) -> list[str]:
    return [f"app-{n:03d}" for n in range(count)]


class WaveLoad:
    """`bench_load{app, deployment}` for every app and Deployment: 0.5 +- 0.45, one slow sine
    per series with its own phase (fixed seed), so at any time some are above 0.8 (alert) and
    some below 0.2."""

    def __init__(self, apps: list[str], policies: int, period: float = WAVE_PERIOD,
                 seed: int = 4) -> None:
        rng = random.Random(seed)
        self.period = period
        self.series = [(app, f"svc-{i}", rng.random()) for app in apps
                       for i in range(1, policies + 1)]
        self.start = time.time()

    def render(self) -> str:
        t = (time.time() - self.start) / self.period
        lines = [f"# TYPE {LOAD_METRIC} gauge"]
        for app, deployment, phase in self.series:
            value = 0.5 + 0.45 * math.sin(2 * math.pi * (t + phase))
            lines.append(f'{LOAD_METRIC}{{app="{app}",deployment="{deployment}"}} {value:.4f}')
        return "\n".join(lines) + "\n"


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Start everything, submit the apps, warm up, measure; the figures."""
    work = fresh_dir(BUILD / "work" / "controller_load")
    apps = app_ids(args.apps)
    load = WaveLoad(apps, args.policies, args.wave_period)
    with Processes() as procs, Exporter(load.render) as exporter:
        kube_url = start_fake_kube(procs, work)
        prometheus = start_prometheus(
            procs, work, scrape_interval=f"{args.scrape:g}s",
            evaluation_interval=f"{args.scrape:g}s",
            static_jobs={"bench-load": [exporter.address]}, force_fake=args.fake_prometheus)
        daemon = start_daemon(procs, work, kube_url=kube_url, prometheus=prometheus,
                              tick=args.tick)
        print(f"controller pid {daemon.pid} at {daemon.url}; Prometheus "
              f"{'FAKE' if prometheus.fake else 'real'} at {prometheus.url}; "
              f"fake Kubernetes at {kube_url}", flush=True)

        started = time.monotonic()
        with ThreadPoolExecutor(args.submit_workers) as pool:
            answers = pool.map(lambda a: daemon.submit(make_adt(a, args.policies), a), apps)
            for done, _ in enumerate(answers, 1):
                if done % 25 == 0 or done == len(apps):
                    print(f"  submitted {done}/{len(apps)} apps "
                          f"({time.monotonic() - started:.1f} s)", flush=True)
        submit_seconds = time.monotonic() - started
        warmup = args.warmup_ticks * args.tick
        print(f"warm-up {warmup:g} s, then measuring for {args.seconds:g} s", flush=True)
        time.sleep(warmup)

        before_metrics = daemon.metrics()
        kube_next, _ = kube_requests(kube_url, since=10**9)
        cpu0 = {"daemon": cpu_seconds(daemon.pid), "prometheus": cpu_seconds(prometheus.pid)}
        t0 = time.monotonic()
        peak_daemon = peak_tree = 0.0
        while (elapsed := time.monotonic() - t0) < args.seconds:
            peak_daemon = max(peak_daemon, rss_mb(daemon.pid))
            peak_tree = max(peak_tree, tree_rss_mb(daemon.pid))
            time.sleep(min(0.5, max(0.0, args.seconds - elapsed)))
        wall = time.monotonic() - t0
        cpu1 = {"daemon": cpu_seconds(daemon.pid), "prometheus": cpu_seconds(prometheus.pid)}
        after_metrics = daemon.metrics()
        final_daemon, final_tree = rss_mb(daemon.pid), tree_rss_mb(daemon.pid)
        final_pss = tree_pss_mb(daemon.pid)
        hwm_daemon = rss_mb(daemon.pid, "VmHWM")
        _, window_requests = kube_requests(kube_url, since=kube_next)
        if daemon.process.poll() is not None:
            raise RuntimeError(f"the controller died during the run; see {daemon.log}")

    def delta(name: str) -> float:
        return after_metrics.get(name, 0.0) - before_metrics.get(name, 0.0)

    ticks = delta("micado_tick_seconds_count")
    expected = args.apps * wall / args.tick
    kube_counts: dict[str, int] = {}
    for method, path, _at in window_requests:
        kind = f"{method} {'scale' if path.endswith('/scale') else path.rsplit('/', 1)[-1]}"
        kube_counts[kind] = kube_counts.get(kind, 0) + 1
    return {
        "benchmark": "controller_load",
        "settings": {"apps": args.apps, "policies_per_app": args.policies, "tick": args.tick,
                     "seconds": args.seconds, "warmup_ticks": args.warmup_ticks,
                     "prometheus_scrape_and_eval_interval": args.scrape,
                     "wave_period": args.wave_period,
                     "prometheus": "fake (tests/fakes/prometheus_api.py)" if prometheus.fake
                     else "real"},
        "machine": machine(),
        "submit_seconds": submit_seconds,
        "wall_seconds": wall,
        "cpu_cores": (cpu1["daemon"] - cpu0["daemon"]) / wall,
        "prometheus_cpu_cores": (cpu1["prometheus"] - cpu0["prometheus"]) / wall,
        "rss_mb": {"daemon_peak": peak_daemon, "daemon_final": final_daemon,
                   "daemon_hwm_since_start": hwm_daemon, "with_children_peak": peak_tree,
                   "with_children_final": final_tree,
                   "with_children_pss_final": final_pss},
        "ticks_done": ticks,
        "ticks_expected": expected,
        "mean_tick_seconds": delta("micado_tick_seconds_sum") / ticks if ticks else None,
        "rule_evaluations": delta("micado_rule_evaluations_total"),
        "scale_actions": delta("micado_actions_total"),
        "input_failures": delta("micado_input_failures_total"),
        "kubernetes_requests": kube_counts,
        "targets": {"cpu_cores": TARGET_CORES, "rss_mb": TARGET_RSS_MB},
    }


def report(result: dict[str, Any]) -> str:
    """The figures as a table, each with its target and whether it is met."""
    s = result["settings"]
    rss = result["rss_mb"]
    ticks, expected = result["ticks_done"], result["ticks_expected"]
    rows = [
        ("CPU, daemon + descendants", f"{result['cpu_cores']:.3f} cores",
         f"< {TARGET_CORES} core", result["cpu_cores"] < TARGET_CORES),
        ("RSS, daemon, peak", f"{rss['daemon_peak']:.1f} MiB", f"< {TARGET_RSS_MB:g} MB",
         rss["daemon_peak"] < TARGET_RSS_MB),
        ("RSS, daemon, final", f"{rss['daemon_final']:.1f} MiB", f"< {TARGET_RSS_MB:g} MB",
         rss["daemon_final"] < TARGET_RSS_MB),
        ("RSS, daemon + children, peak", f"{rss['with_children_peak']:.1f} MiB", "(info)", None),
        ("PSS, daemon + children, final", f"{rss['with_children_pss_final']:.1f} MiB",
         "< 150 MB", rss["with_children_pss_final"] < 150),
        ("RSS, daemon + children, final", f"{rss['with_children_final']:.1f} MiB", "(info)",
         None),
        ("ticks done / expected", f"{ticks:.0f} / {expected:.0f} ({ticks / expected:.1%})",
         ">= 98%", ticks >= 0.98 * expected),
    ]
    lines = [
        f"controller load: {s['apps']} apps x {s['policies_per_app']} policies, tick "
        f"{s['tick']:g} s, measured {result['wall_seconds']:.1f} s after "
        f"{s['warmup_ticks']} warm-up ticks; Prometheus: {s['prometheus']}",
        f"machine: {result['machine']['cpus']} CPUs, {result['machine']['cpu_model']}",
        "",
        f"{'figure':32} {'measured':>22}  {'target':>12}  met",
        f"{'-' * 32} {'-' * 22}  {'-' * 12}  ---",
    ]
    for name, value, target, met in rows:
        flag = "-" if met is None else ("yes" if met else "NO")
        lines.append(f"{name:32} {value:>22}  {target:>12}  {flag}")
    mean = result["mean_tick_seconds"]
    lines += [
        "",
        f"submitting {s['apps']} apps took {result['submit_seconds']:.1f} s; mean tick "
        f"{mean * 1000:.1f} ms" if mean else "no tick measured",
        f"rule evaluations {result['rule_evaluations']:.0f}, scale actions "
        f"{result['scale_actions']:.0f}, ticks held for missing inputs "
        f"{result['input_failures']:.0f}",
        f"Kubernetes requests in the window: {result['kubernetes_requests']}",
        f"Prometheus used {result['prometheus_cpu_cores']:.3f} cores (not counted)",
    ]
    if "fake" in s["prometheus"]:
        lines.append("NOTE: no prometheus binary (or --fake-prometheus): the fake Prometheus "
                     "API served every query with 0.5 and no alert; alerts were not exercised")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", type=int, default=200)
    parser.add_argument("--policies", type=int, default=5, help="policies (Deployments) per app")
    parser.add_argument("--tick", type=float, default=5.0, help="tick_seconds of the daemon")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window")
    parser.add_argument("--warmup-ticks", type=int, default=2)
    parser.add_argument("--scrape", type=float, default=5.0,
                        help="Prometheus scrape and evaluation interval, seconds")
    parser.add_argument("--wave-period", type=float, default=WAVE_PERIOD,
                        help="seconds of one load cycle of each series (shorter: more scaling)")
    parser.add_argument("--submit-workers", type=int, default=4,
                        help="concurrent POST /v1/apps requests")
    parser.add_argument("--fake-prometheus", action="store_true",
                        help="use the fake Prometheus API even if prometheus is installed")
    args = parser.parse_args()
    result = measure(args)
    path = save_json("controller_load", result)
    print()
    print(report(result))
    print(f"\nfigures saved to {path}")


if __name__ == "__main__":
    main()
