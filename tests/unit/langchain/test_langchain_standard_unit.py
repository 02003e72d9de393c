"""LangChain's standard unit tests for ChatSLM.

The model is built lazily, so these tests never load a GGUF file nor touch the network: the
parameters below name no runtime, and nothing here calls the model.
"""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_slm import ChatSLM


class TestChatSLMStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatSLM]:
        return ChatSLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # The packaged default model, never loaded: construction is lazy.
        return {"temperature": 0}

    # Capability flags, set to what ChatSLM really does.
    @property
    def has_tool_calling(self) -> bool:
        return True  # bind_tools; grammar-constrained calls on the local runtime

    @property
    def has_tool_choice(self) -> bool:
        return True  # auto / none / any / required / a tool name, enforced by the grammar

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def structured_output_kwargs(self) -> dict[str, Any]:
        return {"method": "json_schema"}  # the default: the schema itself is the grammar

    @property
    def supports_json_mode(self) -> bool:
        return True  # response_format={"type": "json_object"}, grammar-constrained

    @property
    def returns_usage_metadata(self) -> bool:
        return True  # on invoke and on the last chunk of stream

    @property
    def supports_model_override(self) -> bool:
        return False  # one ChatSLM runs one model; a per-call model= is refused

    # Text-only small models: no images, audio, PDFs or Anthropic-format blocks.
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
