from slm_agents.capture import StreamRecorder
from slm_agents.types import Completion, StreamChunk, ToolCallDelta, Usage

from .conftest import msg


def test_core_chunks_reassemble_with_the_final_completion(mem_store):
    rec = StreamRecorder(mem_store, messages=msg(), route="slm", task="t")
    rec.add(StreamChunk(content="Hel"))
    rec.add(StreamChunk(content="lo"))
    rec.add(StreamChunk(tool_calls=[ToolCallDelta(index=1, id="b", name="g", arguments='{"y"')]))
    rec.add(StreamChunk(tool_calls=[ToolCallDelta(index=0, id="a", name="f", arguments="{}")]))
    rec.add(StreamChunk(tool_calls=[ToolCallDelta(index=1, arguments=": 2}")]))
    final = Completion(message={"role": "assistant", "content": "Hello"}, finish_reason="tool_calls",
                       usage=Usage(5, 3), confidence=0.8, model="smol", runtime="fake")
    rec.add(StreamChunk(finish_reason="tool_calls", completion=final))
    record = rec.record()
    assert record["content"] == "Hello"
    assert [c["function"] for c in record["tool_calls"]] == [
        {"name": "f", "arguments": "{}"}, {"name": "g", "arguments": '{"y": 2}'}]
    assert (record["input_tokens"], record["output_tokens"], record["confidence"]) == (5, 3, 0.8)
    assert record["ttft_ms"] is not None and record["latency_ms"] >= record["ttft_ms"]
    cid = rec.finish()
    assert mem_store.flush()
    assert mem_store.db["calls"].get(cid)["finish_reason"] == "tool_calls"


def test_openai_chunk_dicts_and_sdk_objects():
    class SDKChunk:
        def __init__(self, data):
            self.data = data

        def model_dump(self):
            return self.data

    rec = StreamRecorder(messages=msg())
    rec.add({"model": "gpt-x", "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}]}}]})
    rec.add(SDKChunk({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": '{"id": 7}'}}]}, "finish_reason": "tool_calls"}]}))
    rec.add({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 4}})
    r = rec.record(route="llm")
    assert r["tool_calls"] == [{"id": "call_1", "type": "function",
                                "function": {"name": "lookup", "arguments": '{"id": 7}'}}]
    assert (r["model"], r["input_tokens"], r["output_tokens"], r["route"]) == ("gpt-x", 11, 4, "llm")
    assert r["content"] is None and r["finish_reason"] == "tool_calls"
