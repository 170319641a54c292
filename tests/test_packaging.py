"""What a distribution declares: its licences (the vendored ECharts included) and citation."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_the_licence_files_exist_and_the_expression_names_each_licence():
    files = [path for pattern in PROJECT["license-files"] for path in REPO.glob(pattern)]
    names = sorted(path.name for path in files)
    assert names == ["LICENSE", "LICENSE-echarts.txt", "NOTICE-echarts.txt"]
    assert (REPO / "LICENSE").read_text().startswith("MIT License\n\nCopyright (c) ")
    assert "metalab-smk contributors" in (REPO / "LICENSE").read_text()
    vendored = REPO / "metalab_smk" / "ui" / "static" / "vendor"
    assert "Apache License" in (vendored / "LICENSE-echarts.txt").read_text()
    assert PROJECT["license"] == "MIT AND Apache-2.0"


def test_the_citation_matches_the_project():
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert (citation["title"], citation["version"]) == (PROJECT["name"], PROJECT["version"])
    assert citation["license"] == "MIT"
    assert citation["authors"] == [{"name": "metalab-smk contributors"}]
