"""Issue 13, section 1: redaction gaps (structural keys, data URLs, tokens, extras, params)."""

from __future__ import annotations

import base64
import json
import random
import string

from slm_agents.capture import Redactor

EMAIL = "jane@x.com"
PII = f"Jane Roe <{EMAIL}>"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_tool_arguments_under_structural_key_names_are_redacted(mem_store):
    cid = mem_store.log({
        "messages": [
            {"role": "user", "content": "look her up"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {
                "name": "lookup", "arguments": json.dumps({"name": PII, "id": EMAIL, "type": EMAIL})}}]},
            {"role": "tool", "tool_call_id": "c1", "name": "lookup", "content": json.dumps({"name": PII})},
        ],
        "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "notify", "arguments": {"name": PII}}}],
        "metadata": {"name": PII, "role": EMAIL, "finish_reason": EMAIL, "index": EMAIL},
    })
    tid = mem_store.log_tool({"call_id": "c1", "name": "lookup", "arguments": {"name": PII, "index": EMAIL},
                              "result": {"name": PII, "tool_call_id": EMAIL}})
    assert mem_store.flush()
    row = mem_store.db["calls"].get(cid)
    assert EMAIL not in json.dumps(row)
    messages = json.loads(row["messages"])
    assert messages[0]["role"] == "user" and messages[2]["tool_call_id"] == "c1"
    call = messages[1]["tool_calls"][0]
    assert call["id"] == "c1" and call["type"] == "function" and call["function"]["name"] == "lookup"
    assert messages[2]["name"] == "lookup"
    assert EMAIL not in json.dumps(mem_store.db["tool_executions"].get(tid))


def test_only_a_real_base64_data_url_skips_redaction(mem_store):
    real = "data:image/png;base64," + base64.b64encode(b"\x89PNG....").decode()
    fake = f"data: contact {EMAIL} now"
    cid = mem_store.log({"messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": real}},
                                     {"type": "text", "text": fake}]}]})
    assert mem_store.flush()
    row = mem_store.db["calls"].get(cid)
    messages = json.loads(row["messages"])
    assert messages[0]["content"][0]["image_url"]["url"] == real
    assert EMAIL not in row["messages"]
    assert json.loads(row["metadata"])["data_urls"] == {"image/png": 1}
    assert Redactor().redact_text(fake)[1] == {"EMAIL": 1}


def test_jws_with_non_json_payload_and_alg_none_jwt_are_found():
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    none_header = _b64url(json.dumps({"alg": "none"}).encode())
    payload = _b64url(json.dumps({"sub": "1234567890", "name": "John"}).encode())
    jws = f"{header}.{_b64url(b'plain text payload, not json')}.{_b64url(b'x' * 32)}"
    unsigned = f"{none_header}.{payload}."
    for token in (jws, unsigned):
        text, counts = Redactor().redact_text(f"token was {token} ok")
        assert token not in text and counts == {"JWT": 1}, (token, text)


def test_an_ipv6_address_with_an_ipv4_tail_is_redacted_whole():
    r = Redactor()
    # the IPv4 tail used to be found first and the IPv6 prefix (a subscriber's network) kept
    assert r.redact_text("host 2001:db8:1:2:3:4:192.0.2.33 up")[0] == "host <IP_1> up"
    assert r.redact_text("host ::ffff:192.0.2.33 and 2001:db8::7:10.0.0.7")[0] == "host <IP_1> and <IP_2>"
    assert r.redact_text("ratio 1:2:3:4:5:6 from 10.0.0.7")[0] == "ratio 1:2:3:4:5:6 from <IP_1>"
    assert r.redact_text("server 10.0.0.7, fe80::1")[0] == "server <IP_1>, <IP_2>"


def test_escalation_and_label_extras_are_redacted(mem_store):
    mem_store.link_escalation("a", "b", "invalid_tool_call", note=f"user {EMAIL}", detail={"name": PII})
    mem_store.label("a", "bad", note="n", reviewer=EMAIL, context={"name": PII})
    assert mem_store.flush()
    assert EMAIL not in json.dumps(list(mem_store.db["escalations"].rows))
    assert EMAIL not in json.dumps(list(mem_store.db["labels"].rows))


def test_params_are_redacted_and_credential_headers_always_dropped(mem_store):
    from sqlite_utils import Database

    from slm_agents.capture import CaptureStore

    params = {"temperature": 0.1, "max_tokens": 16, "max_completion_tokens": 8, "extra_headers": {"Authorization": "Bearer abcdefghijklmnopqrstuvwxyz0123",
                                                    "X-Api-Key": "secret123", "Cookie": "sid=1",
                                                    "X-Auth-Token": "t0k3n-value", "access_token": "tok-abc",
                                                    "X-Request-Id": "r1"},
              "user": EMAIL}
    record = {"messages": [{"role": "user", "content": "hi"}], "params": params, "tags": [EMAIL],
              "tool_choice": {"type": "function", "function": {"name": "lookup"}}}
    cid = mem_store.log(record)
    assert mem_store.flush()
    row = mem_store.db["calls"].get(cid)
    stored = json.loads(row["params"])
    assert stored["temperature"] == 0.1 and stored["extra_headers"] == {"X-Request-Id": "r1"}
    assert stored["max_tokens"] == 16 and stored["max_completion_tokens"] == 8
    assert stored["user"] == "<EMAIL_1>" and EMAIL not in row["tags"]
    assert json.loads(row["tool_choice"])["function"]["name"] == "lookup"
    with CaptureStore(Database(memory=True), redactor=None) as raw:  # dropped even with redaction off
        rid = raw.log(record)
        assert raw.flush()
        assert "secret123" not in raw.db["calls"].get(rid)["params"]
        assert "abcdefghijklmnop" not in raw.db["calls"].get(rid)["params"]


def test_labelled_tokens_and_arguments_recall_and_hard_negative_precision(capsys):
    rng = random.Random(13)
    alnum = string.ascii_letters + string.digits
    positives: list[tuple[str, str]] = []
    for _ in range(20):
        rnd = "".join(rng.choice(alnum) for _ in range(24))
        header = _b64url(json.dumps({"alg": rng.choice(["HS256", "RS256", "none"])}).encode())
        positives.append((f"jws {header}.{_b64url(rnd.encode())}.{_b64url(rnd[::-1].encode())} end", "JWT"))
        positives.append((f"unsigned {header}.{_b64url(json.dumps({'sub': rnd}).encode())}. end", "JWT"))
        user = f"user{rng.randint(1, 999)}@example.org"
        key = rng.choice(["name", "id", "type", "role", "index", "tool_call_id", "finish_reason"])
        positives.append((json.dumps({key: f"Jane Roe <{user}>"}), "EMAIL"))
    hard_negatives = [
        "data:image/png;base64,iVBORw0KGgo=", "eyJ is how base64 JSON starts", "see a.b.c for details",
        "version eyJ1.2.3", "the payload was eyJhbGciOiJIUzI1NiJ9 alone", "a.b. c.d.",
        "file name.tar.gz and x.y.z", "tokenize the text", "name: Jane", '{"id": "c1", "type": "function"}',
        "Bearer of good news", "alg none is insecure", "data: not a url", "id 12345 type 7",
    ]
    redactor = Redactor()
    missed = [(text, kind) for text, kind in positives
              if kind not in {k for _, _, k in redactor.find(text)} and
              not any(kind in json.dumps(v) for v in [redactor.redact_text(text)[1]])]
    fp = [t for t in hard_negatives if redactor.find(t)]
    recall = 1 - len(missed) / len(positives)
    precision = 1 - len(fp) / len(hard_negatives)
    with capsys.disabled():
        print(f"\ntokens/arguments: recall {recall:.3f} on {len(positives)}, hard-negative precision {precision:.3f}")
    assert recall >= 0.99, missed
    assert precision >= 0.98, fp


def test_task_names_built_from_prompt_text_carry_no_pii(tmp_path):
    from slm_agents.capture import CaptureStore
    from slm_agents.dataset.tasks import list_tasks

    with CaptureStore(tmp_path / "raw.db", redactor=None) as store:
        for i in range(6):
            store.log({"messages": [{"role": "user", "content": f"refund order {i} for {EMAIL}"}], "route": "llm",
                       "content": "ok"})
        assert store.flush()
        tasks = list_tasks(store.db, recluster=True)
    assert tasks
    assert all(EMAIL not in t.label and EMAIL not in t.sample_prompt for t in tasks), [t.label for t in tasks]

