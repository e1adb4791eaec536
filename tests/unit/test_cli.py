"""The `micado validate` and `micado render` commands, as a user runs them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from micado.cli.main import main

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
    vm:
      type: tosca.nodes.MiCADO.EC2.Compute
"""


def test_validate_examples(examples_dir: Path) -> None:
    runner = CliRunner()
    for adt in sorted(examples_dir.glob("*.yaml")):
        result = runner.invoke(main, ["validate", str(adt)])
        assert result.exit_code == 0, result.output
        assert "valid (app id" in result.output
        assert "policies (2)" in result.output


def test_validate_reports_every_error_and_exits_2(tmp_path: Path) -> None:
    adt = tmp_path / "broken.yaml"
    adt.write_text(BROKEN)
    result = CliRunner().invoke(main, ["validate", str(adt)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    for line in ("topology_template.node_templates.web.properties.imagePullPolicy: must be one "
                 "of Always, IfNotPresent",
                 "topology_template.node_templates.web.properties.image: required",
                 "topology_template.node_templates.vm.properties.region_name: required"):
        assert line in result.output


def test_bad_parameter_syntax(examples_dir: Path) -> None:
    result = CliRunner().invoke(main, ["validate", str(examples_dir / "nginx_ec2.yaml"),
                                       "-p", "novalue"])
    assert result.exit_code == 2
    assert "must look like NAME=VALUE" in result.output


def test_render_to_directory_is_deterministic(examples_dir: Path, tmp_path: Path) -> None:
    adt = examples_dir / "stressng_nova.yaml"
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / run
        result = CliRunner().invoke(main, ["render", str(adt), "-o", str(out)])
        assert result.exit_code == 0, result.output
        outputs.append(((out / "manifests.yaml").read_bytes(), (out / "plan.yaml").read_bytes()))
    assert outputs[0] == outputs[1]
    manifests = list(yaml.safe_load_all(outputs[0][0]))
    assert [m["kind"] for m in manifests] == ["Deployment"]
    plan = yaml.safe_load(outputs[0][1])
    assert plan["app_id"] == "stressng-nova"
    assert [g["name"] for g in plan["node_groups"]] == ["worker-node"]
    assert {p["target"] for p in plan["policies"]} == {"worker-node", "stressng"}


def test_render_to_stdout(examples_dir: Path) -> None:
    result = CliRunner().invoke(main, ["render", str(examples_dir / "nginx_ec2.yaml")])
    assert result.exit_code == 0, result.output
    documents = list(yaml.safe_load_all(result.output))
    kinds = [d.get("kind") for d in documents[:-1]]
    assert "Deployment" in kinds and "Service" in kinds
    assert documents[-1]["app_id"] == "nginx-ec2"


def test_console_script_runs(examples_dir: Path) -> None:
    exe = shutil.which("micado", path=str(Path(sys.executable).parent))
    assert exe, "the micado console script is installed with the package"
    proc = subprocess.run([exe, "validate", str(examples_dir / "stressng_cloudsigma.yaml")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "provisioning for CloudSigma is not available" in proc.stdout


def test_a_file_that_is_not_utf8_is_an_invalid_adt(tmp_path: Path) -> None:
    """Exit 2 and the usual error lines, not the argument parser's exit 1."""
    adt = tmp_path / "latin1.yaml"
    adt.write_bytes("tosca_definitions_version: tosca_simple_yaml_1_2\ndescription: café\n"
                    .encode("latin-1"))
    for command in ("validate", "render"):
        result = CliRunner().invoke(main, [command, str(adt)])
        assert result.exit_code == 2, result.output
        assert result.output.splitlines() == [
            f"{adt}: 1 error",
            "  (document): not UTF-8 text: byte 0xe9 at line 2, column 17 (save the file as "
            "UTF-8)"]


def test_deep_nesting_is_a_located_error_not_a_traceback(tmp_path: Path) -> None:
    adt = tmp_path / "deep.yaml"
    adt.write_text(BROKEN.replace("imagePullPolicy: Sometimes",
                                  "args: " + "[" * 600 + "]" * 600), encoding="utf-8")
    result = CliRunner().invoke(main, ["validate", str(adt)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert "  topology_template.node_templates.web.properties.args[0][0]" in result.output
    assert "line 9, column 74: values nested more than 64 levels deep" in result.output

    params = CliRunner().invoke(main, ["validate", str(tmp_path / "in.yaml"), "-p",
                                       "names=" + "[" * 600 + "]" * 600])
    assert params.exit_code == 2  # the file does not exist; the parameter never ran
    (tmp_path / "in.yaml").write_text(BROKEN.replace(
        "topology_template:\n", "topology_template:\n  inputs:\n    names: {type: list}\n"),
        encoding="utf-8")
    params = CliRunner().invoke(main, ["validate", str(tmp_path / "in.yaml"), "-p",
                                       "names=" + "[" * 600 + "]" * 600])
    assert params.exit_code == 2, params.output
    assert "topology_template.inputs.names.(parameter): line 1, column 65: values nested " \
           "more than 64 levels deep" in params.output
