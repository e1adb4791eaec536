"""The `micado` command line.

User errors (a bad ADT, a bad flag) end with a message and exit code 2, never a traceback.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import click

from . import __version__
from .adt import AdtError, CompiledApp, app_id_from_filename, compile_adt
from .adt.errors import Problem, format_path
from .adt.inputs import parse_parameter
from .adt.render import manifests_yaml, plan_yaml

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
    try:
        text = adt.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.FileError(str(adt), hint=str(exc)) from None
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
    from .policy.sandbox import evaluate

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
    from .simulate import ScenarioError, html_report, load_scenario, table_lines
    from .simulate import simulate as run_simulation

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
