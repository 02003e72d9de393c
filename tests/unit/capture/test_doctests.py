"""The examples in the capture modules' docstrings run and print what they claim."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "slm_agents._ids",
    "slm_agents.capture",
    "slm_agents.capture.redact",
    "slm_agents.capture.schema",
    "slm_agents.capture.store",
    "slm_agents.capture.stream",
    "slm_agents.capture.query",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0
