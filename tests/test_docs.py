"""The documentation: the site builds with ``mkdocs build --strict``, and the reference pages cover every config
key (``docs/configuration.md``) and every command and option (``docs/commands.md``), read from the code itself."""

from __future__ import annotations

import argparse
import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from paczero.cli import build_parser
from paczero.compare import CompareConfig
from paczero.config import Config

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
ROW = re.compile(r"^\| `([^`]+)` \| `([^`]*)` \|", re.M)


def _keys(cls: type, prefix: str = "") -> dict[str, Any]:
    """Dotted key → default of every leaf field of a config dataclass, recursively."""
    keys = {}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if dataclasses.is_dataclass(default):
            keys.update(_keys(type(default), f"{prefix}{f.name}."))
        else:
            keys[prefix + f.name] = default
    return keys


def _documented(text: str) -> dict[str, str]:
    """Key → default column of the option tables (rows ``| `key` | `default` | meaning |``)."""
    rows = ROW.findall(text)
    keys = [k for k, _ in rows]
    assert len(keys) == len(set(keys)), "a key is listed twice"
    return dict(rows)


def _same_default(documented: str, actual: Any) -> bool:
    try:
        value = yaml.safe_load(documented)
    except yaml.YAMLError:  # e.g. the prompt "{sentence} It was"
        value = documented
    if isinstance(actual, float) and isinstance(value, (str, int)):
        value = float(value)
    return value == actual


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path):
    """Broken links, nav entries to missing pages, griffe warnings and public objects without a docstring
    (docs/hooks/docstrings.py) all fail the build."""
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-5000:]
    assert (tmp_path / "site" / "api" / "mechanisms" / "index.html").is_file()


def test_every_config_key_is_documented_with_its_default():
    actual, documented = _keys(Config), _documented((DOCS / "configuration.md").read_text(encoding="utf-8"))
    assert sorted(set(actual) - set(documented)) == [], "config keys missing from docs/configuration.md"
    assert sorted(set(documented) - set(actual)) == [], "docs/configuration.md lists keys that do not exist"
    wrong = [f"{k}: documented {documented[k]!r}, actual {actual[k]!r}" for k in actual
             if not _same_default(documented[k], actual[k])]
    assert wrong == []


def test_every_compare_key_is_documented():
    text = (DOCS / "commands.md").read_text(encoding="utf-8").split("Keys of a compare YAML", 1)[1]
    documented = _documented(text)
    for key, default in _keys(CompareConfig).items():
        if "." in key:  # overrides.<mechanism>: named in the meaning of the `overrides` row
            assert f"`{key}`" in text, f"compare key {key} missing from docs/commands.md"
        else:
            assert key in documented and _same_default(documented[key], default), key


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _sections(page: Path) -> dict[str, str]:
    parts = re.split(r"^## paczero (\w+)\s*$", page.read_text(encoding="utf-8"), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_command_and_option_is_documented(command):
    sections = _sections(DOCS / "commands.md")
    assert command in sections, f"docs/commands.md has no '## paczero {command}' section"
    text = sections[command]
    for action in _subcommands()[command]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        names = action.option_strings or [action.metavar or action.dest]
        assert any(f"`{name}" in text for name in names), f"paczero {command}: {names} undocumented"


def test_the_commands_page_documents_no_command_that_does_not_exist():
    assert set(_sections(DOCS / "commands.md")) == set(_subcommands())
    assert "`--verbose`" in (DOCS / "commands.md").read_text(encoding="utf-8")


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link]
    assert local, "the README links to the docs"
    assert [link for link in local if not (ROOT / link).exists()] == []


_RUNG = re.compile(r'^\s*\[([\w.-]+)\]="([^"]*)"', re.M)
_VAR = re.compile(r"^([A-Z]+)=(\S+)", re.M)


@pytest.mark.parametrize("script", sorted((DOCS / "results").glob("*.sh")), ids=lambda p: p.name)
def test_every_rung_of_the_results_scripts_is_a_valid_config(script):
    """The resumable scripts behind docs/results.md: every rung is a config paczero accepts, and the run order
    names only defined rungs, so the page's commands keep working as the config grows."""
    from paczero.settings import load_config

    text = script.read_text()
    variables = {name: value for name, value in _VAR.findall(text)}
    common = re.search(r"^COMMON=\(([^)]*)\)", text, re.M)
    common = common.group(1).split() if common else []
    rungs = dict(_RUNG.findall(text))
    assert rungs, f"{script.name} defines no rungs"
    for name, spec in rungs.items():
        words = [re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], w) for w in spec.split()]
        config = words.pop(0) if words and words[0].endswith(".yaml") else variables["CONFIG"]
        cfg = load_config(ROOT / config, [*common, *words, f"run.name={name}"])
        assert cfg.run.name == name
    order = re.search(r"^ORDER=\(([^)]*)\)", text, re.M).group(1).split()
    assert set(order) - set(rungs) <= {"zero-shot-1000"}, f"{script.name} runs rungs it does not define"


def test_every_run_of_the_dpsgd_comparison_is_a_valid_config(monkeypatch):
    """docs/results/dpsgd.py (the "DP-SGD or PACZero?" section): every sweep run and every cell, at any swept rate, is
    a config paczero accepts — DP-SGD on a trainable set with its clip, each matched MI budget below the vacuous one."""
    import sys

    from paczero.settings import load_config

    monkeypatch.syspath_prepend(str(DOCS / "results"))
    monkeypatch.chdir(ROOT)
    sys.modules.pop("dpsgd", None)
    import dpsgd

    monkeypatch.setattr(dpsgd, "chosen_lr", lambda s, kind: dpsgd.SWEEPS[kind][0])
    checked = set()
    for chunk in [c for s in dpsgd.SETS for c in dpsgd.chunks(s)] + [dpsgd.eps6]:
        if True:
            for name, overrides in chunk():
                cfg = load_config(ROOT / dpsgd.HEAD, [*overrides, f"run.name={name}"])
                checked.add(cfg.privacy.mechanism)
                if cfg.privacy.mechanism == "dpsgd":
                    assert cfg.privacy.grad_clip == float(dpsgd.CLIP) and cfg.model.tuning == "set"
    assert checked == {"dpsgd", "zpl", "mi", "firstorder"}
