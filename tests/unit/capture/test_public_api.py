import slm_agents.capture as capture


def test_all_is_pinned():
    assert sorted(capture.__all__) == sorted([
        "CaptureStore", "CaptureStats", "get_default_store", "set_default_store", "resolve_path",
        "record_from_completion", "StreamRecorder", "Redactor", "RedactionSession", "DEFAULT_KINDS",
        "migrate", "migrations", "schema_markdown", "read_call", "list_calls", "stats", "Prices",
        "merge", "DEFAULT_PATH", "ENV_DB",
    ])
    for name in capture.__all__:
        assert getattr(capture, name) is not None
