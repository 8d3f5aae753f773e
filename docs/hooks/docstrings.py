"""MkDocs hook: a public module, class, function or method without a docstring is a build warning.

mkdocstrings renders whatever docstrings exist and says nothing about missing ones; with ``mkdocs build
--strict`` (CI, ``tests/test_docs.py``) these warnings fail the build, so the API reference cannot silently
lose a piece. A method that overrides a documented method of a base class inherits its documentation. Every
module of the package must also appear in an ``::: module`` directive of a page under ``docs/api/``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import griffe

log = logging.getLogger("mkdocs.hooks.docstrings")
PACKAGE = "paczero"
SKIPPED_MODULES = {"paczero.__main__"}


def _documented_by_base(method: griffe.Function) -> bool:
    cls = method.parent
    if not isinstance(cls, griffe.Class):
        return False
    for base in cls.mro():
        inherited = base.members.get(method.name)
        if inherited is not None and not inherited.is_alias and inherited.docstring:
            return True
    return False


def _missing(obj: griffe.Object) -> list[str]:
    found = []
    for name, member in obj.members.items():
        if member.is_alias or name.startswith("_") or member.path in SKIPPED_MODULES:
            continue
        if member.kind in (griffe.Kind.MODULE, griffe.Kind.CLASS, griffe.Kind.FUNCTION):
            if not member.docstring and not (member.is_function and _documented_by_base(member)):
                found.append(f"{member.kind.value} {member.path}")
            if member.kind in (griffe.Kind.MODULE, griffe.Kind.CLASS):
                found += _missing(member)
    return found


def _modules(obj: griffe.Module) -> list[str]:
    subs = [sub for sub in obj.modules.values() if not sub.is_alias and sub.path not in SKIPPED_MODULES]
    return [obj.path] + [m for sub in subs for m in _modules(sub)]


def on_pre_build(config) -> None:
    src = Path(config.config_file_path).parent / "src"
    package = griffe.load(PACKAGE, search_paths=[str(src)], docstring_parser="sphinx")
    missing = ([] if package.docstring else [f"module {PACKAGE}"]) + _missing(package)
    for path in missing:
        log.warning("no docstring: %s", path)
    api = Path(config.docs_dir) / "api"
    rendered = {m for page in api.glob("*.md") for m in re.findall(r"^::: ([\w.]+)", page.read_text(), re.M)}
    for module in _modules(package):
        if module not in rendered:
            log.warning("module %s is on no page under docs/api/", module)
