"""The `micado` commands that talk to the controller, against a real API server.

Each test serves the real API (uvicorn on 127.0.0.1) over a real AppManager (`controller_env`)
and runs the commands through click, and `events --follow` as a real process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from api_server import ApiServer
from conftest import prerequisite
from controller_env import WEB_ADT, ControllerEnv
from micado.api.rest import create_api
from micado.cli.main import main

TOKEN = "cli-test-token-abcdef"

BROKEN = """\
tosca_definitions_version: tosca_simple_yaml_1_2
imports:
  - https://raw.githubusercontent.com/micado-scale/tosca/develop/micado_types.yaml
topology_template:
  node_templates:
    web:
      type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
      properties:
        imagePullPolicy: Sometimes
"""


@dataclass
class Cli:
    env: ControllerEnv
    url: str
    home: Path
    token_file: Path

    def environ(self) -> dict[str, str | None]:
        """HOME in the test's directory, so no real ~/.config/micado/client.yaml is read."""
        return {"HOME": str(self.home), "MICADO_ENDPOINT": None, "MICADO_TOKEN_FILE": None}

    def run(self, *args: str, connect: bool = True) -> Result:
        extra = ["--endpoint", self.url, "--token-file", str(self.token_file)] if connect else []
        return CliRunner().invoke(main, [*args, *extra], env=self.environ())

    def adt(self, name: str = "web.yaml", text: str | None = None) -> Path:
        path = self.home / name
        path.write_text(WEB_ADT.read_text() if text is None else text)
        return path


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    env = ControllerEnv(tmp_path / "controller")
    home = tmp_path / "home"
    home.mkdir()
    token_file = home / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    try:
        with ApiServer(create_api(env.manager, env.telemetry, TOKEN)) as server:
            yield Cli(env, server.url, home, token_file)
    finally:
        env.stop()


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    return result.stdout


def test_start_status_pause_resume_update_stop(cli: Cli) -> None:
    adt = cli.adt("my_web.yaml")
    out = ok(cli.run("start", str(adt), "-p", "cooldown_down=30", "--tick", "5"))
    assert out.startswith("my-web: running (2 objects changed, tick 5 s)")
    assert "  create Deployment default/web" in out
    assert cli.env.manager.get_app("my-web")["params"] == {"cooldown_down": "30"}

    apps = ok(cli.run("apps")).splitlines()
    assert apps[0].split() == ["APP", "STATUS", "TICK", "UPDATED", "REASON"]
    assert apps[1].split()[:3] == ["my-web", "running", "5s"]

    status = ok(cli.run("status", "my-web"))
    assert status.startswith("my-web: running\n  tick 5 s, last tick never\n")
    assert "TARGET   KIND        CURRENT→DESIRED  MIN..MAX  REASON" in status
    assert "workers  node_group  ?→?              1..3      not decided yet" in status
    assert "web      workload    ?→?              1..5      not decided yet" in status
    assert "pending operations:\n    #1 workers create -> 1 since " in status
    assert "no node actuator is configured" in status

    summary = ok(cli.run("status")).splitlines()
    assert summary[0].split() == ["APP", "STATUS", "TARGETS", "PENDING", "REASON"]
    assert summary[1].startswith("my-web  running  workers ?→?, web ?→?  1")

    assert ok(cli.run("pause", "my-web")) == "my-web: paused\n"
    assert json.loads(ok(cli.run("status", "my-web", "--json")))["status"] == "paused"
    assert ok(cli.run("resume", "my-web")) == "my-web: running\n"

    new = cli.adt("v2.yaml", WEB_ADT.read_text().replace("nginx:1.25", "nginx:1.27"))
    dry = ok(cli.run("update", "my-web", str(new), "--dry-run"))
    assert dry.startswith(f"my-web: dry run, nothing was changed; applying {new} would do:")
    assert "  update Deployment default/web" in dry
    deployment = cli.env.kube.get("apps", "deployments", "default", "web")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert ok(cli.run("update", "my-web", str(new))).startswith("my-web: running (1 object")

    events = ok(cli.run("events", "--app", "my-web")).splitlines()
    assert any(" my-web  submitted  app my-web deployed" in line for line in events)
    assert any(" my-web  updated  " in line for line in events)

    assert ok(cli.run("stop", "my-web")) == "my-web: deleted (2 objects)\n"
    assert ok(cli.run("apps")) == "no apps\n"
    assert ok(cli.run("status")) == "no apps\n"


def test_json_output(cli: Cli) -> None:
    started = json.loads(ok(cli.run("start", str(cli.adt()), "--id", "site", "--json")))
    assert started["app_id"] == "site" and started["status"] == "running"
    listed = json.loads(ok(cli.run("apps", "--json")))
    assert [a["app_id"] for a in listed["apps"]] == ["site"]
    status = json.loads(ok(cli.run("status", "--json")))
    assert [s["app_id"] for s in status["apps"]] == ["site"]
    assert len(status["apps"][0]["targets"]) == 2
    events = json.loads(ok(cli.run("events", "--json", "--limit", "1")))
    assert len(events["events"]) == 1 and events["events"][0]["kind"] == "submitted"
    assert json.loads(ok(cli.run("pause", "site", "--json"))) == {"app_id": "site",
                                                                "status": "paused"}
    stopped = json.loads(ok(cli.run("stop", "site", "--json")))
    assert stopped["status"] == "deleted"


def test_dry_run_start_changes_nothing(cli: Cli) -> None:
    out = ok(cli.run("start", str(cli.adt()), "--dry-run"))
    assert out.startswith("web: dry run, nothing was changed; applying ")
    assert "  create Service default/web" in out
    assert cli.env.manager.list_apps() == []


def test_broken_adt_prints_every_error_and_exits_2(cli: Cli) -> None:
    adt = cli.adt("broken.yaml", BROKEN)
    result = cli.run("start", str(adt))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"{adt}: the ADT has 2 errors\n")
    assert ("  topology_template.node_templates.web.properties.imagePullPolicy: must be one of "
            "Always") in result.stderr
    assert "  topology_template.node_templates.web.properties.image: required" in result.stderr
    assert "Traceback" not in result.output


def test_user_errors_exit_2(cli: Cli) -> None:
    missing = cli.run("status", "ghost")
    assert missing.exit_code == 2
    assert missing.stderr == "error: no app named 'ghost' (micado apps lists them)\n"
    for command in (("stop", "ghost"), ("pause", "ghost"), ("resume", "ghost"),
                    ("update", "ghost", str(cli.adt()))):
        result = cli.run(*command)
        assert result.exit_code == 2 and "no app named 'ghost'" in result.stderr
    ok(cli.run("start", str(cli.adt())))
    duplicate = cli.run("start", str(cli.adt()))
    assert duplicate.exit_code == 2 and "already exists" in duplicate.stderr
    bad_param = cli.run("start", str(cli.adt()), "-p", "novalue")
    assert bad_param.exit_code == 2 and "must look like NAME=VALUE" in bad_param.output
    bad_tick = cli.run("start", str(cli.adt()), "--tick", "0.1")
    assert bad_tick.exit_code == 2 and "--tick" in bad_tick.output
    bad_id = cli.run("start", str(cli.adt()), "--id", "Not_Valid")
    assert bad_id.exit_code == 2 and "must be a DNS label" in bad_id.stderr
    unknown_input = cli.run("start", str(cli.adt()), "--id", "x", "-p", "nope=1")
    assert unknown_input.exit_code == 2 and "nope" in unknown_input.stderr
    assert cli.run("events", "--limit", "0").exit_code == 2


def test_authentication_problems(cli: Cli) -> None:
    wrong = cli.home / "wrong"
    wrong.write_text("not-the-token")
    wrong.chmod(0o600)
    result = cli.run("apps", "--endpoint", cli.url, "--token-file", str(wrong), connect=False)
    assert result.exit_code == 2 and result.stderr == "error: invalid bearer token\n"
    no_token = cli.run("apps", "--endpoint", cli.url, connect=False)
    assert no_token.exit_code == 2
    config = cli.home / ".config" / "micado" / "client.yaml"
    assert no_token.stderr == (
        "error: no API token: pass --token-file FILE (the controller's token file, "
        "/etc/micado/api-token on its host), or set $MICADO_TOKEN_FILE, or set token_file in "
        f"{config} (no such file)\n")
    absent = cli.run("apps", "--endpoint", cli.url, "--token-file", str(cli.home / "nope"),
                     connect=False)
    assert absent.exit_code == 2 and absent.stderr == f"error: {cli.home / 'nope'}: token " \
                                                      "file not found\n"

    cli.token_file.chmod(0o644)
    readable = cli.run("apps")
    assert readable.exit_code == 2
    assert "accessible by group or others (mode 0644)" in readable.stderr
    assert TOKEN not in readable.output


def test_client_config_file_and_environment(cli: Cli) -> None:
    config = cli.home / ".config" / "micado" / "client.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(f"endpoint: {cli.url}\ntoken_file: ../../token\n")
    runner = CliRunner()
    assert runner.invoke(main, ["apps"], env=cli.environ()).stdout == "no apps\n"
    other = cli.home / "elsewhere.yaml"
    other.write_text(f"endpoint: {cli.url}\ntoken_file: {cli.token_file}\n")
    config.unlink()
    result = runner.invoke(main, ["apps", "--client-config", str(other)], env=cli.environ())
    assert result.exit_code == 0 and result.stdout == "no apps\n"
    env = {**cli.environ(), "MICADO_ENDPOINT": cli.url, "MICADO_TOKEN_FILE": str(cli.token_file)}
    assert runner.invoke(main, ["apps"], env=env).stdout == "no apps\n"
    bad = runner.invoke(main, ["apps", "--client-config", str(cli.home / "none.yaml")],
                        env=cli.environ())
    assert bad.exit_code == 2 and bad.stderr == f"error: {cli.home / 'none.yaml'}: no such file\n"


def test_unreachable_controller_and_server_errors_exit_1(cli: Cli) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    result = cli.run("apps", "--endpoint", url, "--token-file", str(cli.token_file),
                     connect=False)
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot reach the controller at {url}: connection refused\n"

    cli.env.store.close()  # an internal failure of the controller
    broken = cli.run("apps")
    assert broken.exit_code == 1
    assert broken.stderr == "error: internal error, see the controller log\n"


def micado_script() -> Path:
    script = Path(sys.executable).with_name("micado")
    prerequisite(script.exists(), f"the micado console script next to {sys.executable}")
    return script


def read_line(process: subprocess.Popen[str], deadline: float) -> str:
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line:
            return line
        if process.poll() is not None:
            break
    raise AssertionError(f"no line from micado events --follow (exit {process.poll()})")


def test_events_follow_prints_new_events_as_they_come(cli: Cli) -> None:
    ok(cli.run("start", str(cli.adt())))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICADO_")}
    env["HOME"] = str(cli.home)
    process = subprocess.Popen(
        [str(micado_script()), "events", "--follow", "--json", "--interval", "0.1",
         "--endpoint", cli.url, "--token-file", str(cli.token_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        seen: list[dict[str, Any]] = []
        while not any(e["kind"] == "submitted" for e in seen):
            seen.append(json.loads(read_line(process, deadline)))
        requests.post(f"{cli.url}/v1/apps/web/pause", timeout=10,
                      headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()
        while not any(e["kind"] == "paused" for e in seen):
            seen.append(json.loads(read_line(process, deadline)))
        ids = [e["id"] for e in seen]
        assert ids == sorted(set(ids))  # each event once, in order
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_controller_run_reports_config_errors(tmp_path: Path) -> None:
    config = tmp_path / "controller.yaml"
    config.write_text("tick_second: 5\nprometheus:\n  url: nope\n")
    result = CliRunner().invoke(main, ["controller", "run", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {config}: tick_second: unknown setting (did you mean 'tick_seconds'?)\n"
        f"error: {config}: prometheus.url: must be an http:// or https:// URL with a host, "
        "got 'nope'\n")
    missing = CliRunner().invoke(main, ["controller", "run", "--config",
                                        str(tmp_path / "absent.yaml")])
    assert missing.exit_code == 2 and "absent.yaml: no such file" in missing.stderr


def test_status_shows_drift_repaired_by_the_controller(cli: Cli) -> None:
    ok(cli.run("start", str(cli.adt("my_web.yaml"))))
    cli.env.tick("my-web")
    deleted = requests.delete(cli.env.kube.url + "/apis/apps/v1/namespaces/default/deployments/"
                              "web", timeout=10)  # kubectl delete deployment web
    assert deleted.status_code == 200
    cli.env.tick("my-web")
    status = ok(cli.run("status", "my-web"))
    assert "  drift: Deployment/web deleted outside the controller, re-created (" in status


@pytest.mark.parametrize("name", ["a b", "x/y", "Web", "web-", "a" * 64, "web%2Fx"])
def test_a_malformed_app_name_says_what_a_name_is(cli: Cli, name: str) -> None:
    for args in (("status", name), ("stop", name), ("events", "--app", name)):
        result = cli.run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert f"{name!r} is not an app name: app names are lower-case letters, digits and " \
               "'-', at most 63 characters" in result.stderr
        assert "Not Found" not in result.output and "Traceback" not in result.output


def test_an_upper_case_app_name_gets_the_lower_case_one_suggested(cli: Cli) -> None:
    upper = cli.run("status", "MICADO-APP")  # micado-client's default id, stored lower-case
    assert upper.exit_code == 2 and "(did you mean 'micado-app'? micado apps" in upper.stderr


def test_events_without_any_say_so(cli: Cli) -> None:
    assert ok(cli.run("events")) == "no events\n"
    assert ok(cli.run("events", "--app", "ghost")) == "no events of app ghost\n"
    ok(cli.run("start", str(cli.adt())))
    last = cli.env.manager.events()[-1]["id"]
    assert ok(cli.run("events", "--since", str(last))) == f"no events after #{last}\n"
    assert json.loads(ok(cli.run("events", "--app", "ghost", "--json"))) == {"events": []}


def test_apps_and_status_say_why_an_app_holds(cli: Cli) -> None:
    ok(cli.run("start", str(cli.adt())))
    assert cli.env.fake_prometheus is not None
    cli.env.fake_prometheus.down = True
    cli.env.tick("web")
    why = f"holding: Prometheus at {cli.env.prometheus_url} does not answer"
    apps = ok(cli.run("apps")).splitlines()
    assert apps[1].split()[:2] == ["web", "running"] and apps[1].endswith(why)
    assert json.loads(ok(cli.run("apps", "--json")))["apps"][0]["holding"] == why[9:]
    assert ok(cli.run("status")).splitlines()[1].endswith(why)
    cli.env.fake_prometheus.down = False
    cli.env.tick("web")
    assert "holding" not in ok(cli.run("apps"))
    assert json.loads(ok(cli.run("apps", "--json")))["apps"][0]["holding"] is None


def test_status_shows_alerts_prometheus_cannot_evaluate(cli: Cli) -> None:
    ok(cli.run("start", str(cli.adt())))
    assert cli.env.fake_prometheus is not None
    cli.env.fake_prometheus.rule_errors["web"] = {"web_overloaded": "many-to-many matching"}
    cli.env.tick("web")
    status = ok(cli.run("status", "web"))
    assert ("  alert web_overloaded: Prometheus cannot evaluate it (it never fires): "
            "many-to-many matching\n") in status
    events = ok(cli.run("events", "--app", "web"))
    assert "alert_rule_error  alert web_overloaded: Prometheus cannot evaluate it" in events


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_dry_run_without_a_controller_compiles_here(cli: Cli) -> None:
    url = closed_port_url()
    adt = cli.adt("shop.yaml")
    out = ok(cli.run("start", str(adt), "--dry-run", "--endpoint", url, "--token-file",
                     str(cli.token_file), connect=False))
    assert out.splitlines() == [
        f"shop: dry run, nothing was changed; {adt} would apply 2 objects (no live diff: "
        f"cannot reach the controller at {url}: connection refused; the live diff needs the "
        "controller and its cluster):",
        "  apply Deployment default/web",
        "  apply Service default/web",
        "  node groups: workers (1..3)",
        "  policies: scalability-workers -> workers, scalability-web -> web",
    ]
    no_token = ok(cli.run("update", "shop", str(adt), "--dry-run", "--endpoint", url,
                          connect=False))
    assert "(no live diff: no API token (--token-file) to ask the controller;" in no_token
    as_json = json.loads(ok(cli.run("start", str(adt), "--dry-run", "--json", "--endpoint",
                                    url, connect=False)))
    assert as_json["dry_run"] is True and as_json["live_diff"].startswith("no API token")
    assert [c["action"] for c in as_json["changes"]] == ["apply", "apply"]
    broken = cli.run("start", str(cli.adt("broken.yaml", BROKEN)), "--dry-run", "--endpoint",
                     url, connect=False)
    assert broken.exit_code == 2 and "image: required" in broken.stderr
    assert cli.env.manager.list_apps() == []


def test_dry_run_with_the_controller_but_no_cluster(cli: Cli) -> None:
    cli.env.kube.stop()
    out = ok(cli.run("start", str(cli.adt()), "--dry-run"))
    first, *rest = out.splitlines()
    assert first.startswith("web: dry run, nothing was changed; ")
    assert "would apply 2 objects (no live diff: cannot read the cluster: " in first
    assert first.endswith("; the live diff needs the cluster):")
    assert rest == ["  apply Deployment default/web", "  apply Service default/web",
                    "  node groups: workers (1..3)",
                    "  policies: scalability-workers -> workers, scalability-web -> web"]
    assert cli.env.manager.list_apps() == []
    refused = cli.run("start", str(cli.adt()))  # without --dry-run the cluster is needed
    assert refused.exit_code == 1 and "cannot read the cluster" in refused.stderr
