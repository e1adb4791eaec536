"""The corpus of broken ADTs: each must be rejected with the errors its header announces.

Every file in tests/data/broken/ is a MiCADO ADT with a deliberate fault (or several). Its
leading comment lines say what must be reported:

    # params: name=value other=value     (optional: parameters, as `-p name=value`)
    # expect: <path>: <fragment of the message>

An expectation is met by a reported error whose `str()` starts with `<path>: ` and contains the
fragment. The same errors must reach the user through `micado validate` (exit code 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from micado.adt import AdtError, app_id_from_filename, compile_adt
from micado.cli.main import main

REPO = Path(__file__).resolve().parents[3]
BROKEN_DIR = REPO / "tests" / "data" / "broken"
DEMO_BROKEN = REPO / "examples" / "broken" / "stressng_broken.yaml"
CORPUS = sorted(BROKEN_DIR.glob("*.yaml"))
MIN_CORPUS = 35


@dataclass(frozen=True)
class Expectation:
    path: str
    fragment: str

    @property
    def line(self) -> str:
        return f"{self.path}: {self.fragment}"

    def matches(self, text: str) -> bool:
        """`text` is one reported problem, `<path>: <message>`."""
        return text.startswith(f"{self.path}: ") and self.fragment in text[len(self.path) + 2:]


@dataclass(frozen=True)
class Header:
    params: dict[str, str]
    expectations: list[Expectation]


def _split_expectation(text: str) -> Expectation:
    """`<path>: <fragment>`; a path never contains ': ' (the document is '(document)')."""
    path, sep, fragment = text.partition(": ")
    if not sep or not path or not fragment:
        raise ValueError(f"malformed '# expect:' line: {text!r}")
    return Expectation(path, fragment)


def read_header(path: Path) -> Header:
    """The `# params:` and `# expect:` lines of the leading comment block."""
    params: dict[str, str] = {}
    expectations: list[Expectation] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("#"):
            break
        body = line[1:].strip()
        if body.startswith("expect:"):
            expectations.append(_split_expectation(body.removeprefix("expect:").strip()))
        elif body.startswith("params:"):
            for item in body.removeprefix("params:").split():
                name, sep, value = item.partition("=")
                if not sep or not name:
                    raise ValueError(f"{path.name}: malformed parameter {item!r}")
                params[name] = value
    return Header(params, expectations)


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= MIN_CORPUS, f"only {len(CORPUS)} broken ADTs in {BROKEN_DIR}"
    several = [p for p in CORPUS if len(read_header(p).expectations) >= 3]
    assert len(several) >= 2, "the corpus needs ADTs with several faults"


def test_demo_broken_adt_is_a_corpus_file() -> None:
    """`make demo` shows examples/broken/stressng_broken.yaml; it is one of the corpus files."""
    demo = DEMO_BROKEN.read_text(encoding="utf-8")
    assert any(p.read_text(encoding="utf-8") == demo for p in CORPUS)
    assert len(read_header(DEMO_BROKEN).expectations) >= 4


@pytest.mark.parametrize("path", [*CORPUS, DEMO_BROKEN], ids=[*_ids(CORPUS), "demo"])
def test_broken_adt_is_rejected_with_its_errors(path: Path) -> None:
    header = read_header(path)
    assert header.expectations, f"{path.name} has no '# expect:' line"
    with pytest.raises(AdtError) as info:
        compile_adt(path.read_text(encoding="utf-8"), params=header.params,
                    app_id=app_id_from_filename(path), base_dir=path.parent)
    reported = [str(problem) for problem in info.value.errors]
    assert all(problem.severity == "error" for problem in info.value.errors)
    missing = [e.line for e in header.expectations
               if not any(e.matches(text) for text in reported)]
    assert not missing, (
        f"{path.name}: expected errors not reported:\n  " + "\n  ".join(missing)
        + "\nreported:\n  " + "\n  ".join(reported)
    )


@pytest.mark.parametrize("path", [*CORPUS, DEMO_BROKEN], ids=[*_ids(CORPUS), "demo"])
def test_cli_validate_reports_every_error(path: Path) -> None:
    header = read_header(path)
    args = ["validate", str(path)]
    for name, value in header.params.items():
        args += ["-p", f"{name}={value}"]
    result = CliRunner().invoke(main, args)
    output = result.output  # stdout and stderr, as a user sees them
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit), output
    assert result.exit_code == 2, output
    problem_lines = [line.strip() for line in output.splitlines()]
    missing = [e.line for e in header.expectations
               if not any(e.matches(line) for line in problem_lines)]
    assert not missing, f"{path.name}: not in the CLI output:\n  " + "\n  ".join(missing) + (
        "\noutput:\n" + output)

