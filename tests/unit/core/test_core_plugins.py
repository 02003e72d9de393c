"""Runtime plugins through pluggy (slm_agents.plugins, slm_agents.hookspecs)."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import pytest

from slm_agents import hookimpl
from slm_agents.errors import InvalidRequest
from slm_agents.plugins import create_runtime, get_plugin_manager, runtime_factories
from slm_agents.runtimes import FakeRuntime, Runtime


def test_builtin_runtimes_are_registered() -> None:
    factories = runtime_factories()
    assert {"llamacpp", "openai", "fake"} <= set(factories)
    assert all(callable(f) for f in factories.values())


def test_create_runtime_builds_registered_runtimes() -> None:
    fake = create_runtime("fake", responses=["hi"], model="m")
    assert isinstance(fake, FakeRuntime) and isinstance(fake, Runtime)
    assert fake.complete([{"role": "user", "content": "x"}]).content == "hi"
    openai_rt = create_runtime("openai", model="m", base_url="http://127.0.0.1:1/v1")
    assert openai_rt.name == "openai" and openai_rt.model_name == "m"


def test_create_runtime_unknown_name_lists_installed() -> None:
    with pytest.raises(InvalidRequest) as info:
        create_runtime("nope")
    message = str(info.value)
    assert "no runtime named 'nope'" in message
    assert "fake, llamacpp, openai" in message
    assert "Install a plugin" in message


def test_plugin_manager_is_a_singleton() -> None:
    assert get_plugin_manager() is get_plugin_manager()


class EchoRuntime(FakeRuntime):
    name = "echo"


@pytest.fixture
def echo_plugin() -> Iterator[types.ModuleType]:
    plugin = types.ModuleType("slm_agents_echo_test_plugin")

    @hookimpl
    def register_runtimes(register: Any) -> None:
        register("echo", EchoRuntime)

    plugin.register_runtimes = register_runtimes  # type: ignore[attr-defined]
    pm = get_plugin_manager()
    pm.register(plugin)
    try:
        yield plugin
    finally:
        pm.unregister(plugin)


def test_a_registered_plugin_adds_a_runtime(echo_plugin: types.ModuleType) -> None:
    assert "echo" in runtime_factories()
    rt = create_runtime("echo", responses=["from plugin"])
    assert isinstance(rt, EchoRuntime) and rt.name == "echo"
    assert rt.complete([{"role": "user", "content": "x"}]).content == "from plugin"


def test_unregistered_plugin_is_gone() -> None:
    assert "echo" not in runtime_factories()


def test_redactor_hook_is_declared() -> None:
    hook = get_plugin_manager().hook
    assert hasattr(hook, "register_redactors") and hasattr(hook, "register_runtimes")
