"""Imports: MiCADO's type URLs served offline, local relative files, everything else refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from adt_text import adt, errors_of

from micado.adt import AdtError, compile_adt
from micado.adt.imports import micado_bundle_path

CONTAINER = """
topology_template:
  node_templates:
    web:
      type: tosca.nodes.MiCADO.Container.Application.Docker.Deployment
      properties:
        image: nginx:1.25
"""


@pytest.mark.parametrize(
    ("url", "bundled"),
    [
        ("https://raw.githubusercontent.com/micado-scale/tosca/develop/micado_types.yaml",
         "micado/micado_types.yaml"),
        ("https://raw.githubusercontent.com/micado-scale/tosca/v0.12.2/micado_types.yaml",
         "micado/micado_types.yaml"),
        ("https://raw.githubusercontent.com/micado-scale/tosca/main/custom_types/cloud/common.yaml",
         "micado/custom_types/cloud/common.yaml"),
        ("https://github.com/micado-scale/tosca/blob/develop/micado_types.yaml",
         "micado/micado_types.yaml"),
        ("https://raw.githubusercontent.com/micado-scale/tosca/refs/heads/feature/x/micado_types.yaml",
         "micado/micado_types.yaml"),
        ("https://example.com/micado_types.yaml", None),
        ("https://raw.githubusercontent.com/someone/tosca/main/micado_types.yaml", None),
    ],
)
def test_micado_urls_map_to_bundled_files(url: str, bundled: str | None) -> None:
    assert micado_bundle_path(url) == bundled


def test_any_branch_or_tag_compiles_offline() -> None:
    for ref in ("main", "develop", "v0.12.2"):
        header = ("tosca_definitions_version: tosca_simple_yaml_1_2\nimports:\n  - "
                  f"https://raw.githubusercontent.com/micado-scale/tosca/{ref}/micado_types.yaml\n")
        app = compile_adt(adt(CONTAINER, header=header))
        assert [w.name for w in app.plan.workloads] == ["web"]


def test_import_as_file_entry_and_named_entry() -> None:
    url = "https://raw.githubusercontent.com/micado-scale/tosca/main/micado_types.yaml"
    for entry in (f"- file: {url}", f"- micado:\n      file: {url}", f"- micado: {url}"):
        header = f"tosca_definitions_version: tosca_simple_yaml_1_3\nimports:\n  {entry}\n"
        compile_adt(adt(CONTAINER, header=header))


def test_other_urls_are_refused_without_fetching() -> None:
    header = ("tosca_definitions_version: tosca_simple_yaml_1_2\n"
              "imports:\n  - https://example.com/types.yaml\n")
    with pytest.raises(AdtError) as exc:
        compile_adt(adt(CONTAINER, header=header))
    (line,) = [str(e) for e in exc.value.errors if str(e).startswith("imports[0]")]
    assert "nothing is fetched from the network" in line


def test_relative_local_import(tmp_path: Path) -> None:
    (tmp_path / "types").mkdir()
    (tmp_path / "types" / "mine.yaml").write_text(
        "tosca_definitions_version: tosca_simple_yaml_1_2\n"
        "imports:\n  - https://raw.githubusercontent.com/micado-scale/tosca/main/micado_types.yaml\n"
        "node_types:\n  my.Web:\n    derived_from: "
        "tosca.nodes.MiCADO.Container.Application.Docker.Deployment\n"
        "    properties:\n      image:\n        type: string\n        default: nginx:1.25\n"
    )
    text = ("tosca_definitions_version: tosca_simple_yaml_1_2\nimports:\n  - types/mine.yaml\n"
            "topology_template:\n  node_templates:\n    web:\n      type: my.Web\n")
    app = compile_adt(text, base_dir=tmp_path)
    (deployment,) = [m for m in app.manifests if m["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"


def test_missing_local_import_is_reported(tmp_path: Path) -> None:
    text = ("tosca_definitions_version: tosca_simple_yaml_1_2\nimports:\n  - nothere.yaml\n"
            + CONTAINER.lstrip("\n"))
    with pytest.raises(AdtError) as exc:
        compile_adt(text, base_dir=tmp_path)
    assert any(str(e).startswith("imports[0]: file") and "not found" in str(e)
               for e in exc.value.errors)


def test_unknown_micado_type_file_is_reported() -> None:
    header = ("tosca_definitions_version: tosca_simple_yaml_1_2\nimports:\n  - https://raw."
              "githubusercontent.com/micado-scale/tosca/main/custom_types/cloud/nothere.yaml\n")
    errors = errors_of(CONTAINER, header=header)
    assert any(e.startswith("imports[0]: MiCADO type file") for e in errors)
