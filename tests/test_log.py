import io
import json
import logging
import sys

import pytest

from driver import log


def test_json_lines_with_stdlib_loggers_routed_through() -> None:
    out = io.StringIO()
    log.setup("info", "json", stream=out)
    log.get("t").info("hello", node="n1")
    logging.getLogger("kubernetes.client").warning("from stdlib %s", "lib")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["event"] == "hello" and lines[0]["node"] == "n1" and lines[0]["level"] == "info"
    assert lines[1]["event"] == "from stdlib lib" and lines[1]["logger"] == "kubernetes.client"


def test_tracebacks_do_not_show_locals() -> None:
    out = io.StringIO()
    log.setup("info", "json", stream=out)
    secret = "bearer-token-123"  # noqa: F841 - must not appear in the log
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.get("t").exception("failed")
    text = out.getvalue()
    assert "boom" in text and "bearer-token-123" not in text


def test_default_stream_follows_current_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    log.setup("info", "json")
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    log.get("t").info("one")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    log.get("t").info("two")
    assert json.loads(second.getvalue())["event"] == "two"


def test_bad_level_is_named() -> None:
    with pytest.raises(ValueError, match="log level"):
        log.setup("loud")
