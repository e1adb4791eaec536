"""`micado rule eval`: one rule in the sandbox, JSON out, exit 3 on a rule error."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CPU_BUDGET

RULE = """\
if node_overloaded and m_time_since_node_count_changed > 60:
    m_node_count += 1
print('nodes', m_node_count)
"""


def _micado() -> str:
    exe = shutil.which("micado", path=str(Path(sys.executable).parent))
    assert exe, "the micado console script is installed with the package"
    return exe


def _run(tmp_path: Path, rule: str, inputs: object, *extra: str,
         ) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rule.py").write_text(rule)
    (tmp_path / "inputs.json").write_text(json.dumps(inputs))
    return subprocess.run([_micado(), "rule", "eval", str(tmp_path / "rule.py"), "--inputs",
                           str(tmp_path / "inputs.json"), *extra],
                          capture_output=True, text=True, check=False, timeout=60)


def test_outputs_and_log_as_json(tmp_path: Path) -> None:
    inputs = {"node_overloaded": True, "m_node_count": 2, "m_time_since_node_count_changed": 90}
    result = _run(tmp_path, RULE, inputs)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"outputs": {"m_node_count": 3}, "log": ["nodes 3"]}


def test_named_outputs(tmp_path: Path) -> None:
    inputs = {"node_overloaded": False, "m_node_count": 2, "m_time_since_node_count_changed": 0,
              "m_userdata": {"a": 1}}
    result = _run(tmp_path, RULE, inputs, "--outputs", "m_node_count,m_userdata")
    assert json.loads(result.stdout)["outputs"] == {"m_node_count": 2, "m_userdata": {"a": 1}}


@pytest.mark.parametrize(("rule", "fragment"), [
    ("import os\n", "error: forbidden: import is not allowed in scaling rules (line 1)"),
    ("x = 1\nx = missing + 1\n", "error: runtime: NameError: name 'missing' is not defined"),
    ("while True:\n    pass\n",
     f"error: cpu: the rule used more than {CPU_BUDGET:g} s of CPU time"),
    ("print 'python 2'\n", "error: syntax:"),
])
def test_rule_errors_exit_3(tmp_path: Path, rule: str, fragment: str) -> None:
    result = _run(tmp_path, rule, {}, "--timeout", str(CPU_BUDGET))
    assert result.returncode == 3
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize("inputs_text", ["[1, 2]", "{not json", '{"a": 1'])
def test_bad_inputs_file_exits_2(tmp_path: Path, inputs_text: str) -> None:
    (tmp_path / "rule.py").write_text("x = 1\n")
    (tmp_path / "inputs.json").write_text(inputs_text)
    result = subprocess.run([_micado(), "rule", "eval", str(tmp_path / "rule.py"), "--inputs",
                             str(tmp_path / "inputs.json")], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 2
    assert "--inputs" in result.stderr and "Traceback" not in result.stderr
