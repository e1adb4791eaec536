"""The `micado` command line.

User errors (a bad ADT, a bad flag) end with a message and exit code 2, never a traceback.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from micado import __version__
from micado.adt import AdtError, CompiledApp, app_id_from_filename, compile_adt
from micado.adt.errors import Problem, format_path
from micado.adt.inputs import parse_parameter
from micado.adt.render import manifests_yaml, plan_yaml
from micado.control.config import DEFAULT_CONFIG_PATH

if TYPE_CHECKING:
    from micado.cli.client import ApiClient, ApiClientError

EXIT_INVALID = 2
EXIT_RULE_FAILED = 3


def _parse_params(values: tuple[str, ...]) -> dict[str, str]:
    params: dict[str, str] = {}
    for text in values:
        try:
            name, value = parse_parameter(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="-p/--param") from None
        params[name] = value
    return params


def _compile(adt: Path, params: tuple[str, ...], app_id: str | None) -> CompiledApp:
    text = _read_adt(adt)
    try:
        return compile_adt(text, params=_parse_params(params),
                           app_id=app_id or app_id_from_filename(adt),
                           base_dir=adt.resolve().parent)
    except AdtError as exc:
        _report_errors(adt, exc)
        sys.exit(EXIT_INVALID)


def _problem_line(problem: Problem) -> str:
    return f"  {format_path(problem.path)}: {problem.message}"


def _report_errors(adt: Path, exc: AdtError) -> None:
    count = len(exc.errors)
    click.echo(f"{adt}: {count} error{'s' if count != 1 else ''}", err=True)
    for problem in exc.errors:
        click.echo(_problem_line(problem), err=True)
    for problem in exc.warnings:
        click.echo(f"  warning: {format_path(problem.path)}: {problem.message}", err=True)


_ADT = click.argument("adt", type=click.Path(exists=True, dir_okay=False, path_type=Path))
_PARAMS = click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
                       help="Value for an ADT input (repeatable).")
_APP_ID = click.option("--app-id", help="Application id (default: from the file name).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="micado")
def main() -> None:
    """Deploy MiCADO applications (TOSCA ADTs) on Kubernetes and scale them."""


@main.command()
@_ADT
@_PARAMS
@_APP_ID
def validate(adt: Path, params: tuple[str, ...], app_id: str | None) -> None:
    """Check an ADT; print what it contains, or every error with its path (exit 2)."""
    app = _compile(adt, params, app_id)
    plan = app.plan
    click.echo(f"{adt}: valid (app id {app.app_id})")
    click.echo(f"  workloads ({len(plan.workloads)}): " + (", ".join(
        f"{w.name} ({w.kind})" for w in plan.workloads) or "none"))
    click.echo(f"  node groups ({len(plan.node_groups)}): " + (", ".join(
        f"{g.name} ({g.cloud}, {g.min_instances}..{g.max_instances})"
        for g in plan.node_groups) or "none"))
    if plan.edges:
        click.echo(f"  edges ({len(plan.edges)}): " + ", ".join(e.name for e in plan.edges))
    click.echo(f"  policies ({len(plan.policies)}): " + (", ".join(
        f"{p.name} -> {p.target} ({p.min_instances}..{p.max_instances})"
        for p in plan.policies) or "none"))
    click.echo(f"  manifests: {len(app.manifests)}")
    click.echo(f"  warnings ({len(app.warnings)})" + (":" if app.warnings else ""))
    for warning in app.warnings:
        click.echo(_problem_line(warning))


@main.command()
@_ADT
@_PARAMS
@_APP_ID
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for manifests.yaml and plan.yaml (default: both to stdout).")
def render(adt: Path, params: tuple[str, ...], app_id: str | None, output: Path | None) -> None:
    """Write the Kubernetes manifests and the scaling plan an ADT compiles to."""
    app = _compile(adt, params, app_id)
    manifests, plan = manifests_yaml(app), plan_yaml(app)
    if output is None:
        click.echo(manifests, nl=False)
        click.echo("---\n# plan\n" + plan, nl=False)
        return
    try:
        output.mkdir(parents=True, exist_ok=True)
        (output / "manifests.yaml").write_text(manifests, encoding="utf-8")
        (output / "plan.yaml").write_text(plan, encoding="utf-8")
    except OSError as exc:
        raise click.FileError(str(output), hint=str(exc)) from None
    for warning in app.warnings:
        click.echo(f"warning: {format_path(warning.path)}: {warning.message}", err=True)
    count = len(app.manifests)
    click.echo(f"wrote {output / 'manifests.yaml'} ({count} object{'s' if count != 1 else ''}) and "
               f"{output / 'plan.yaml'}")


@main.group()
def rule() -> None:
    """Work with scaling rules on their own."""


def _assigned_names(code: str) -> list[str]:
    """Names a rule assigns at top level: the default outputs of `micado rule eval`."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return []
    names = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign | ast.AugAssign)
             for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
             if isinstance(t, ast.Name)}
    return sorted(names)


@rule.command("eval")
@click.argument("rule_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--inputs", "inputs_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON object: the rule's variables (queries, alerts, m_* values, constants).")
@click.option("--outputs", help="Comma-separated names to return (default: every name the "
                                "rule assigns).")
@click.option("--timeout", type=click.FloatRange(0.01, 60), default=1.0, show_default=True,
              help="CPU and wall-clock limit in seconds.")
def rule_eval(rule_file: Path, inputs_file: Path, outputs: str | None, timeout: float) -> None:
    """Run one rule in the sandbox; print its outputs and log as JSON (exit 3 if it fails)."""
    from micado.policy.sandbox import evaluate

    try:
        code = rule_file.read_text(encoding="utf-8")
        inputs = json.loads(inputs_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise click.FileError(str(exc.filename or inputs_file), hint=str(exc)) from None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{inputs_file}: not JSON: line {exc.lineno}, column "
                                 f"{exc.colno}: {exc.msg}", param_hint="--inputs") from None
    if not isinstance(inputs, dict) or not all(isinstance(k, str) for k in inputs):
        raise click.BadParameter(f"{inputs_file}: must be a JSON object of variable names",
                                 param_hint="--inputs")
    names = ([n.strip() for n in outputs.split(",") if n.strip()] if outputs is not None
             else _assigned_names(code))
    result = evaluate(code, inputs, names, timeout=timeout)
    if result.error is not None:
        for line in result.log:
            click.echo(f"log: {line}", err=True)
        click.echo(f"error: {result.error}", err=True)
        sys.exit(EXIT_RULE_FAILED)
    click.echo(json.dumps({"outputs": result.outputs, "log": result.log}, indent=2,
                          sort_keys=True))


@main.command()
@_ADT
@_PARAMS
@click.option("--scenario", "scenario_file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Scenario YAML: load curve, cluster model, query and alert expressions.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write an HTML report (table and SVG plot) to this file.")
@click.option("--all-ticks", is_flag=True, help="Print every tick, not only changes.")
def simulate(adt: Path, params: tuple[str, ...], scenario_file: Path, output: Path | None,
             all_ticks: bool) -> None:
    """Run the ADT's scaling rules against a simulated load and cluster, tick by tick."""
    from micado.policy.simulate import ScenarioError, html_report, load_scenario, table_lines
    from micado.policy.simulate import simulate as run_simulation

    app = _compile(adt, params, None)
    try:
        scenario = load_scenario(scenario_file)
        result = run_simulation(app.plan, scenario)
    except ScenarioError as exc:
        count = len(exc.problems)
        click.echo(f"{scenario_file}: {count} error{'s' if count != 1 else ''}", err=True)
        for path, message in exc.problems:
            click.echo(f"  {path}: {message}", err=True)
        sys.exit(EXIT_INVALID)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    for line in table_lines(result, all_rows=all_ticks):
        click.echo(line)
    if output is not None:
        try:
            output.write_text(html_report(result, title=f"micado simulate: {adt.name} with "
                                                        f"{scenario_file.name}",
                                          description=scenario.description), encoding="utf-8")
        except OSError as exc:
            raise click.FileError(str(output), hint=str(exc)) from None
        click.echo(f"wrote {output}")


# --- talking to the controller ---------------------------------------------------------------

EXIT_FAILED = 1


def _client_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--endpoint, --token-file, --client-config; the command gets a ready `ApiClient`."""

    @functools.wraps(func)
    def wrapper(*args: Any, endpoint: str | None, token_file: Path | None,
                client_config: Path | None, **kwargs: Any) -> Any:
        from micado.cli.client import ApiClient, ApiClientError
        from micado.control.config import ConfigError, load_client_config

        try:
            config = load_client_config(endpoint, token_file, client_config)
        except ConfigError as exc:
            for line in exc.problems:
                click.echo(f"error: {line}", err=True)
            sys.exit(EXIT_INVALID)
        if config.token is None and not kwargs.get("dry_run"):  # a dry run can do without
            click.echo(f"error: {_no_token(client_config)}", err=True)
            sys.exit(EXIT_INVALID)
        client = ApiClient(config.endpoint, config.token)
        try:
            return func(client, *args, **kwargs)
        except ApiClientError as exc:
            app = kwargs.get("app")
            if exc.status == 404 and isinstance(app, str):
                click.echo(f"error: no app named {app!r} (micado apps lists them)", err=True)
                sys.exit(EXIT_INVALID)
            _report_api_error(exc)
        finally:
            client.close()

    for option in reversed((
        click.option("--endpoint", metavar="URL",
                     help="Controller API URL (default: $MICADO_ENDPOINT, the client config, "
                          "or http://127.0.0.1:8080)."),
        click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
                     help="File holding the API token (default: $MICADO_TOKEN_FILE or the "
                          "client config); must be readable by its owner only."),
        click.option("--client-config", type=click.Path(dir_okay=False, path_type=Path),
                     help="Client config YAML with endpoint and token_file (default: "
                          "~/.config/micado/client.yaml)."),
    )):
        wrapper = option(wrapper)
    return wrapper


def _no_token(client_config: Path | None) -> str:
    """Where a token can come from, naming the flag and the files looked at."""
    from micado.control.config import ControllerConfig, default_client_config_path

    looked = client_config or default_client_config_path(dict(os.environ))
    return (f"no API token: pass --token-file FILE (the controller's token file, "
            f"{ControllerConfig.token_file} on its host), or set $MICADO_TOKEN_FILE, or set "
            f"token_file in {looked}" + ("" if looked.exists() else " (no such file)"))


def _report_api_error(exc: ApiClientError, subject: str | None = None) -> NoReturn:
    """One line with the controller's message, then every ADT error; exit 2 (4xx) or 1."""
    click.echo(f"{subject or 'error'}: {exc.message}", err=True)
    for problem in exc.errors:
        click.echo(f"  {problem.get('path', '?')}: {problem.get('message', '')}", err=True)
    for problem in exc.warnings:
        click.echo(f"  warning: {problem.get('path', '?')}: {problem.get('message', '')}",
                   err=True)
    sys.exit(EXIT_INVALID if exc.is_client_error else EXIT_FAILED)


_JSON = click.option("--json", "as_json", is_flag=True,
                     help="Print the controller's answer as JSON.")
_APP_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _app_name(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _APP_NAME.match(value):
        hint = (f"did you mean {value.lower()!r}? " if _APP_NAME.match(value.lower())
                else "")
        raise click.BadParameter(f"{value!r} is not an app name: app names are lower-case "
                                 "letters, digits and '-', at most 63 characters, starting "
                                 f"and ending with a letter or digit ({hint}micado apps lists "
                                 "them)")
    return value


_APP = click.argument("app", callback=_app_name)
_TICK = click.option("--tick", "tick", type=click.FloatRange(0.5, 3600), metavar="SECONDS",
                     help="Seconds between the app's scaling evaluations (default: the "
                          "controller's).")
_DRY_RUN = click.option("--dry-run", is_flag=True,
                        help="Only show what would change; change nothing.")


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _read_adt(adt: Path) -> str:
    """The ADT's text; a file that is not UTF-8 is an invalid ADT (exit 2), reported as one."""
    try:
        data = adt.read_bytes()
    except OSError as exc:
        raise click.FileError(str(adt), hint=str(exc)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        problem = Problem((), f"not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line}, "
                              f"column {column} (save the file as UTF-8)")
        _report_errors(adt, AdtError([problem]))
        sys.exit(EXIT_INVALID)


def _when(ts: float | None) -> str:
    return "never" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _table(headers: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    cells = [tuple("" if v is None else str(v) for v in row) for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    return ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            for row in (headers, *cells)]


def _print_submission(adt: Path, result: dict[str, Any]) -> None:
    app_id = result.get("app_id")
    changes = result.get("changes") or []
    live_diff = result.get("live_diff")
    if result.get("dry_run") and live_diff:
        click.echo(f"{app_id}: dry run, nothing was changed; {adt} would apply "
                   f"{len(changes)} object{'s' if len(changes) != 1 else ''} (no live diff: "
                   f"{live_diff}):")
    elif result.get("dry_run"):
        click.echo(f"{app_id}: dry run, nothing was changed; applying {adt} would "
                   + ("change nothing" if not changes else "do:"))
    else:
        count = len(changes)
        click.echo(f"{app_id}: {result.get('status')} ({count} object"
                   f"{'s' if count != 1 else ''} changed, tick {result.get('tick_seconds'):g} s)")
    for change in changes:
        where = f"{change['namespace']}/" if change.get("namespace") else ""
        click.echo(f"  {change.get('action')} {change.get('kind')} {where}{change.get('name')}")
    if result.get("dry_run"):
        click.echo("  node groups: " + (", ".join(
            f"{g.get('name')} ({g.get('min')}..{g.get('max')})"
            for g in result.get("node_groups") or []) or "none"))
        click.echo("  policies: " + (", ".join(
            f"{p.get('name')} -> {p.get('target')}"
            for p in result.get("policies") or []) or "none"))
    for warning in result.get("warnings") or []:
        click.echo(f"  warning: {warning.get('path')}: {warning.get('message')}", err=True)


def _submit(client: ApiClient, adt: Path, call: Callable[[str], dict[str, Any]],
            as_json: bool, offline: Callable[[str], dict[str, Any]] | None = None) -> None:
    """Send the ADT; a dry run (`offline` given) that no controller answers is done here."""
    from micado.cli.client import ApiClientError

    text = _read_adt(adt)
    try:
        if offline is not None and not client.has_token:
            result = offline("no API token (--token-file) to ask the controller")
        else:
            result = call(text)
    except ApiClientError as exc:
        if offline is not None and exc.status in (None, 401):
            result = offline(exc.message)
        elif exc.errors:
            _report_api_error(exc, subject=str(adt))
        else:
            raise  # reported like any other command's (e.g. "no app named ...")
    if as_json:
        _echo_json(result)
    else:
        _print_submission(adt, result)


def _offline(adt: Path, params: tuple[str, ...], app_id: str) -> Callable[[str], dict[str, Any]]:
    """A dry run without the controller: compiled here, listed without a live diff."""
    from micado.control.dryrun import offline_summary

    def run(why: str) -> dict[str, Any]:
        return offline_summary(_compile(adt, params, app_id),
                               f"{why}; the live diff needs the controller and its cluster")
    return run


@main.command()
@_ADT
@_PARAMS
@click.option("--id", "app_id", metavar="APP",
              help="Application id (default: from the file name, as validate and render use).")
@_TICK
@_DRY_RUN
@_JSON
@_client_options
def start(client: ApiClient, adt: Path, params: tuple[str, ...], app_id: str | None,
          tick: float | None, dry_run: bool, as_json: bool) -> None:
    """Deploy an ADT on the controller and start scaling it."""
    values = _parse_params(params)
    chosen = app_id or app_id_from_filename(adt)
    _submit(client, adt, lambda text: client.submit(
        text, app_id=chosen, params=values, tick_seconds=tick, dry_run=dry_run), as_json,
        _offline(adt, params, chosen) if dry_run else None)


@main.command()
@_APP
@_ADT
@_PARAMS
@_TICK
@_DRY_RUN
@_JSON
@_client_options
def update(client: ApiClient, app: str, adt: Path, params: tuple[str, ...],
           tick: float | None, dry_run: bool, as_json: bool) -> None:
    """Apply a new version of a running app's ADT."""
    values = _parse_params(params)
    _submit(client, adt, lambda text: client.update(
        app, text, params=values, tick_seconds=tick, dry_run=dry_run), as_json,
        _offline(adt, params, app) if dry_run else None)


@main.command()
@_APP
@_JSON
@_client_options
def stop(client: ApiClient, app: str, as_json: bool) -> None:
    """Delete an app: its Kubernetes objects, node groups and scaling."""
    result = client.delete(app)
    if as_json:
        _echo_json(result)
        return
    deleted = result.get("deleted") or []
    if result.get("status") == "deleted":
        click.echo(f"{app}: deleted ({len(deleted)} object{'s' if len(deleted) != 1 else ''})")
    else:
        click.echo(f"{app}: {result.get('status')}: {result.get('reason')} (the controller "
                   "keeps retrying)")


def _print_state(app: str, result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _echo_json(result)
    else:
        click.echo(f"{app}: {result.get('status')}")


@main.command()
@_APP
@_JSON
@_client_options
def pause(client: ApiClient, app: str, as_json: bool) -> None:
    """Stop scaling an app; it keeps running at its current size."""
    _print_state(app, client.pause(app), as_json)


@main.command()
@_APP
@_JSON
@_client_options
def resume(client: ApiClient, app: str, as_json: bool) -> None:
    """Resume scaling a paused app."""
    _print_state(app, client.resume(app), as_json)


@main.command()
@_JSON
@_client_options
def apps(client: ApiClient, as_json: bool) -> None:
    """List the controller's apps."""
    listed = client.list_apps()
    if as_json:
        _echo_json({"apps": listed})
        return
    if not listed:
        click.echo("no apps")
        return
    for line in _table(("APP", "STATUS", "TICK", "UPDATED", "REASON"),
                       [(a.get("app_id"), a.get("status"), f"{a.get('tick_seconds'):g}s",
                         _when(a.get("updated_at")), _app_reason(a))
                        for a in listed]):
        click.echo(line)


def _app_reason(app: dict[str, Any]) -> str:
    """Why an app is not simply running: the controller's reason, or why it is holding."""
    if app.get("reason"):
        return str(app["reason"])
    return f"holding: {app['holding']}" if app.get("holding") else ""


def _size(value: Any) -> str:
    return "?" if value is None else str(value)


def _target_reason(target: dict[str, Any]) -> str:
    reason = str(target.get("reason") or "")
    if target.get("error"):
        reason += f" (error: {target['error']})"
    if target.get("dry_run"):
        reason += " (dry run: not applied)"
    return reason


def _print_status(status: dict[str, Any]) -> None:
    click.echo(f"{status.get('app_id')}: {status.get('status')}"
               + (f" ({status['reason']})" if status.get("reason") else ""))
    click.echo(f"  tick {status.get('tick_seconds'):g} s, last tick "
               f"{_when(status.get('last_tick_at'))}")
    inputs = status.get("inputs") or {}
    if inputs:
        click.echo("  inputs: " + ", ".join(f"{k} {v}" for k, v in sorted(inputs.items())))
    for name, error in sorted((status.get("alert_errors") or {}).items()):
        click.echo(f"  alert {name}: Prometheus cannot evaluate it (it never fires): {error}")
    targets = status.get("targets") or []
    if targets:
        for line in _table(("TARGET", "KIND", "CURRENT→DESIRED", "MIN..MAX", "REASON"),
                           [(t.get("target"), t.get("kind"),
                             f"{_size(t.get('current'))}→{_size(t.get('desired'))}",
                             f"{t.get('min')}..{t.get('max')}", _target_reason(t))
                            for t in targets]):
            click.echo("  " + line)
    else:
        click.echo("  no scaling policies")
    pending = status.get("pending_operations") or []
    if pending:
        click.echo("  pending operations:")
        for op in pending:
            line = (f"    #{op.get('op_id')} {op.get('group')} {op.get('kind')} -> "
                    f"{op.get('desired')} since {_when(op.get('started_at'))}")
            if op.get("why_pending"):
                line += f": {op['why_pending']}"
            click.echo(line)
    for group in status.get("node_groups") or []:
        line = f"  node group {group.get('group')}:"
        if group.get("running_op") is not None:
            line += f" operation #{group['running_op']} running;"
        if group.get("backoff_until"):
            line += f" backing off until {_when(group['backoff_until'])};"
        if group.get("backoff_reason"):
            line += f" {group.get('failures')} failure(s), last: {group['backoff_reason']};"
        event = group.get("last_runner_event")
        line += f" last runner event: {event}" if event else " no runner event yet"
        click.echo(line)
        vms = group.get("vms")
        if vms is not None:
            click.echo(f"    VMs ({len(vms)}): " + (", ".join(
                f"{vm.get('name')} ({vm.get('id')}, {vm.get('state')}, "
                f"{vm.get('address') or 'no address'})" for vm in vms) or "none"))
    for report in status.get("drift") or []:
        click.echo(f"  {report.get('message')} ({_when(report.get('at'))})")


@main.command()
@click.argument("app", required=False, callback=_app_name)
@_JSON
@_client_options
def status(client: ApiClient, app: str | None, as_json: bool) -> None:
    """One app's targets (current→desired and why) and pending operations, or all apps."""
    from micado.cli.client import ApiClientError

    if app is not None:
        result = client.status(app)
        if as_json:
            _echo_json(result)
        else:
            _print_status(result)
        return
    statuses = []
    for summary in client.list_apps():
        try:
            statuses.append(client.status(summary["app_id"]))
        except ApiClientError as exc:
            if exc.status != 404:  # deleted between the two requests
                raise
    if as_json:
        _echo_json({"apps": statuses})
        return
    if not statuses:
        click.echo("no apps")
        return
    rows = [(s.get("app_id"), s.get("status"),
             ", ".join(f"{t.get('target')} {_size(t.get('current'))}→"
                       f"{_size(t.get('desired'))}" for t in s.get("targets") or []) or "-",
             len(s.get("pending_operations") or []), _app_reason(s))
            for s in statuses]
    for line in _table(("APP", "STATUS", "TARGETS", "PENDING", "REASON"), rows):
        click.echo(line)


def _event_line(event: dict[str, Any]) -> str:
    return (f"#{event.get('id')}  {_when(event.get('ts'))}  {event.get('app_id') or '-'}  "
            f"{event.get('kind')}  {event.get('message')}")


@main.command()
@click.option("--app", "app_id", metavar="APP", callback=_app_name,
              help="Only this app's events.")
@click.option("--since", type=click.IntRange(min=0), metavar="ID",
              help="Only events after this event id.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="At most this many events (per poll with --follow).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(0.05, 3600), default=2.0, hidden=True,
              help="Seconds between polls with --follow.")
@_JSON
@_client_options
def events(client: ApiClient, app_id: str | None, since: int | None, limit: int,
           follow: bool, interval: float, as_json: bool) -> None:
    """The controller's event log: submissions, decisions, actions, failures."""
    batch = client.events(app_id=app_id, since=since, limit=limit)
    if as_json and not follow:
        _echo_json({"events": batch})
        return
    if not batch and not follow:
        click.echo("no events" + (f" of app {app_id}" if app_id else "")
                   + (f" after #{since}" if since is not None else ""))
        return
    last = since
    try:
        while True:
            for event in batch:
                click.echo(json.dumps(event, sort_keys=True) if as_json else _event_line(event))
                last = max(last or 0, int(event.get("id") or 0))
            if not follow:
                return
            time.sleep(interval)
            batch = client.events(app_id=app_id, since=last if last is not None else 0,
                                  limit=limit)
    except KeyboardInterrupt:
        return


@main.group()
def controller() -> None:
    """Run the controller daemon."""


@controller.command("run")
@click.option("--config", "config_file", default=str(DEFAULT_CONFIG_PATH),
              show_default=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The controller's YAML configuration.")
def controller_run(config_file: Path) -> None:
    """Serve the REST API and run the control loop until SIGTERM/SIGINT."""
    from micado.control.config import ConfigError, load_config

    try:
        config = load_config(config_file)
    except ConfigError as exc:
        for line in exc.problems:
            click.echo(f"error: {line}", err=True)
        sys.exit(EXIT_INVALID)
    from micado.control import daemon

    sys.exit(daemon.run(config))
