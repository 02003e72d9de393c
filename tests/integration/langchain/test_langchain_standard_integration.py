"""LangChain's standard integration tests for ChatSLM, on the real packaged model.

SmolLM2-135M-Instruct runs in-process, greedy (temperature 0) with a small ``max_tokens`` so the
suite stays fast. Tool calling, tool_choice, structured output, JSON mode and usage metadata
pass because the local runtime decodes them under a grammar; the few tests that judge what a
135M model *says* are marked xfail, one by one, with the reason.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_slm import ChatSLM


class TestChatSLMIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatSLM]:
        return ChatSLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # repeat_penalty keeps a 135M model out of loops that would run into max_tokens mid-JSON.
        # One thread: on a shared, oversubscribed CI box llama.cpp's spinning thread barrier can
        # stall a 2-thread decode for minutes; one thread is steady (and ~30% slower when idle).
        return {"temperature": 0, "max_tokens": 64, "repeat_penalty": 1.1, "n_threads": 1}

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def structured_output_kwargs(self) -> dict[str, Any]:
        return {"method": "json_schema"}

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False

    @property
    def supports_image_inputs(self) -> bool:
        return False

    @property
    def supports_image_urls(self) -> bool:
        return False

    @property
    def supports_pdf_inputs(self) -> bool:
        return False

    @property
    def supports_audio_inputs(self) -> bool:
        return False

    @property
    def supports_video_inputs(self) -> bool:
        return False

    @property
    def supports_image_tool_message(self) -> bool:
        return False

    @property
    def supports_pdf_tool_message(self) -> bool:
        return False

    @property
    def supports_anthropic_inputs(self) -> bool:
        return False

    # -- what a 135M model says, not how it is decoded: xfail one test at a time --------------------
    @pytest.mark.xfail(
        strict=True,
        reason="json_mode only constrains the output to *a* JSON object (the keys are in the prompt, "
        "not the grammar); SmolLM2-135M stops after 'setup' and omits 'punchline'. "
        "method='json_schema' (tested above) puts the keys in the grammar and passes."
    )
    def test_json_mode(self, model: BaseChatModel) -> None:
        super().test_json_mode(model)
