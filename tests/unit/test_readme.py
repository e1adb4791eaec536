"""The README as a new user follows it: its commands run as written, its paths and links exist.

Commands that work offline (validate, render, rule eval, simulate, --help) are run; the
deployment steps up to the playbook are run in a copy of the tree, passwords typed on a
terminal; every other command must at least name a program that exists as written.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from conftest import REPO

README = REPO / "README.md"
BIN = Path(sys.executable).parent  # the venv the README calls .venv
OFFLINE = {"validate", "render", "rule", "simulate", "--help"}
MADE_BY_THE_STEPS = "inventories/mysite"


def _blocks(text: str, lang: str) -> list[str]:
    """The fenced blocks whose info string is `lang` ("" for plain ones)."""
    blocks, current, kind = [], [], None
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            if kind is None:
                kind, current = line[3:].strip(), []
            else:
                if kind == lang:
                    blocks.append("".join(current))
                kind = None
        elif kind is not None:
            current.append(line)
    return blocks


def _commands(text: str) -> list[str]:
    """Each shell command of the README's sh blocks: continuations joined, comments dropped."""
    commands = []
    for block in _blocks(text, "sh"):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"(^|\s)#.*", "", line).strip()
            commands.extend(part.strip() for part in line.split(";") if part.strip())
    return commands


def _as_run(command: str, out: Path) -> list[str]:
    """The command with .venv/bin/ pointing at this venv and build/ outputs in `out`."""
    words = [w for w in shlex.split(command) if not (w.startswith("[") and w.endswith("]"))]
    words = [str(BIN / w.removeprefix(".venv/bin/")) if w.startswith(".venv/bin/") else w
             for w in words]
    return [str(out / w.removeprefix("build/")) if w.startswith("build/") else w for w in words]


README_COMMANDS = _commands(README.read_text())
EXAMPLE_COMMANDS = [c for doc in ("rules", "scenarios")
                    for c in _commands((REPO / "examples" / doc / "README.md").read_text())]


@pytest.mark.parametrize("command", README_COMMANDS + EXAMPLE_COMMANDS)
def test_every_command_names_a_program_that_exists_as_written(command: str) -> None:
    program = shlex.split(command)[0]
    if program.startswith(".venv/bin/"):
        assert (BIN / program.removeprefix(".venv/bin/")).exists(), program
    elif "/" in program:
        assert (REPO / program).exists(), program
    else:  # a system command: found on PATH without the venv
        assert shutil.which(program, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                                          "/sbin:/bin"), f"{program}: not found as written"


OFFLINE_COMMANDS = [c for c in README_COMMANDS + EXAMPLE_COMMANDS
                    if c.startswith(".venv/bin/micado ") and c.split()[1] in OFFLINE]


def test_the_offline_commands_are_there() -> None:
    assert {c.split()[1] for c in OFFLINE_COMMANDS} == OFFLINE


@pytest.mark.parametrize("command", OFFLINE_COMMANDS)
def test_offline_command_runs_as_written(command: str, tmp_path: Path) -> None:
    result = subprocess.run(_as_run(command, tmp_path), cwd=REPO, capture_output=True,
                            text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_the_shown_validate_errors_are_what_validate_prints() -> None:
    shown = next(b for b in _blocks(README.read_text(), "")
                 if b.startswith("examples/broken/stressng_broken.yaml"))
    result = subprocess.run([str(BIN / "micado"), "validate",
                             "examples/broken/stressng_broken.yaml"],
                            cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert shown.strip() == (result.stdout + result.stderr).strip()


def _deployment_steps() -> list[str]:
    block = next(b for b in _blocks(README.read_text(), "sh") if "ansible-vault" in b)
    return [c for c in _commands(block.join(["```sh\n", "```\n"])) if c != "make venv"]


def test_deployment_steps_work_as_written(tmp_path: Path) -> None:
    tree = tmp_path / "clone"
    for part in ("inventories/example", "playbooks", "collections", "ansible.cfg"):
        source, target = REPO / part, tree / part
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns(
                "__pycache__", "output", ".tmp"))
        else:
            shutil.copy(source, target)
    password = "a site's own vault password"
    steps = _deployment_steps()
    assert any(s.startswith("cp -r inventories/example") for s in steps)
    for step in steps:
        argv = _as_run(step, tmp_path)
        if argv[0].endswith("ansible-playbook"):
            argv.append("--syntax-check")  # no hosts here: everything short of running it
        child = pexpect.spawn(argv[0], argv[1:], cwd=str(tree), encoding="utf-8", timeout=120,
                              env={"PATH": f"{BIN}:/usr/bin:/bin", "EDITOR": "true",
                                   "HOME": str(tmp_path), "LANG": "C.UTF-8"})
        while child.expect([r"(?i)password: ?", pexpect.EOF]) == 0:
            child.sendline(password)
        status = child.wait()  # reaped, not closed: closing a child still exiting signals it
        child.close()
        assert status == 0, f"{step}:\n{child.before}"
    vault = tree / MADE_BY_THE_STEPS / "group_vars" / "all" / "vault.yml"
    assert not (tree / MADE_BY_THE_STEPS / ".vault-password.example").exists()
    (tmp_path / "pass").write_text(password + "\n")
    shown = subprocess.run([str(BIN / "ansible-vault"), "view", "--vault-password-file",
                            str(tmp_path / "pass"), str(vault)], capture_output=True, text=True,
                           check=False, cwd=tree)
    assert shown.returncode == 0, shown.stderr
    assert "vault_gateway_admin_password" in shown.stdout


# --- paths, links and counts ---------------------------------------------------------------

TOP_LEVEL = {p.split("/")[0] for p in subprocess.run(
    ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()}


def _looks_like_repo_path(text: str) -> bool:
    first = text.split()[0] if text.split() else ""
    return first.split("/")[0] in TOP_LEVEL and ("/" in first or first in TOP_LEVEL)


def _mentioned_paths(text: str) -> set[str]:
    paths = {m.split()[0] for m in re.findall(r"`([^`\n]+)`", text) if _looks_like_repo_path(m)}
    for block in _blocks(text, "sh"):  # files the commands name
        for word in shlex.split(re.sub(r"#.*", "", block.replace("\\\n", " "))):
            if _looks_like_repo_path(word):
                paths.add(word)
    return {p.rstrip("/") for p in paths if not p.startswith(MADE_BY_THE_STEPS)}


@pytest.mark.parametrize("doc", ["README.md", "examples/rules/README.md",
                                 "examples/micado/README.md", "examples/scenarios/README.md"])
def test_paths_and_links_exist(doc: str) -> None:
    text = (REPO / doc).read_text()
    base = (REPO / doc).parent
    missing = sorted(p for p in _mentioned_paths(text) if not (REPO / p).exists())
    # nothing outside the clone: a user has the repository, not the workspace around it
    missing += [t for t in re.findall(r"`(\.\./[^`\s]*)", text)
                if not (base / t).resolve().is_relative_to(REPO) or not (base / t).exists()]
    links = [t for t in re.findall(r"\]\(([^)]+)\)", text) if "://" not in t]
    missing += [t for t in links if not (base / t.split("#")[0]).resolve().is_relative_to(REPO)
                or not (base / t.split("#")[0]).exists()]
    assert missing == []


def test_layout_lists_what_is_there() -> None:
    layout = next(b for b in _blocks(README.read_text(), "") if b.startswith("controller/"))
    parent = ""
    listed = []
    for line in layout.splitlines():
        if re.match(r"\S", line):
            parent = line.split()[0]
            listed.append(parent)
        elif re.match(r"  \S", line):
            names = line.split("  ")[1].strip()
            listed += [parent + n.strip() for n in names.split(",")]
    assert len(listed) > 20
    assert [p for p in listed if not (REPO / p).exists()] == []


def test_counts_match_the_tree() -> None:
    text = " ".join(README.read_text().split())
    broken = len(list((REPO / "tests" / "data" / "broken").glob("*.yaml")))
    assert f"{broken} broken ADTs in `tests/data/broken/`" in text
    molecule = REPO / "collections/ansible_collections/micado/core/extensions/molecule"
    scenarios = len([d for d in molecule.iterdir() if (d / "molecule.yml").exists()])
    words = {6: "six", 7: "seven", 8: "eight", 9: "nine"}
    assert f"the {words.get(scenarios, scenarios)} molecule scenarios" in text
    sys.path.insert(0, str(REPO / "tests" / "unit" / "policy"))
    try:
        from test_sandbox_abuse import ATTEMPTS
    finally:
        sys.path.pop(0)
    assert f"{len(ATTEMPTS)} escape and abuse attempts" in text


def test_the_number_of_tests_is_about_right() -> None:
    said = int(re.search(r"`make test` runs about (\d+) tests", README.read_text())[1])
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                                "-p", "no:cacheprovider"], cwd=REPO, capture_output=True,
                               text=True, check=False).stdout.strip().splitlines()[-1]
    # "N tests collected", or "N/M tests collected (K deselected)" (make test-cluster's marker)
    count = int(re.match(r"(\d+)(?:/\d+)? tests? collected", collected)[1])
    assert abs(count - said) <= 0.15 * count, f"README says about {said}, pytest collects {count}"
