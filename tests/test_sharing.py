"""A dashboard shared with a class: read-only for visitors, the Train page unlocked by the teacher's password
for that session only; untrusted text (run names, errors, URL parameters) shown inert, never as Markdown."""
import json
import socket

import pytest

from app_pages import _access
from helpers import make_evaluated_run, make_run, open_app

PAYLOADS = ("![x](http://example.invalid/x.png)", "[a](javascript:alert(1))", "<b>bold</b>")
CONTROLS = ("Stop", "Resume", "Evaluate", "Delete…", "Start training", "Unlock training", "Lock")


@pytest.mark.parametrize("address, is_shared", [("127.0.0.1", False), ("127.0.0.2", False), ("localhost", False),
                                                ("::1", False), ("[::1]", False), ("0.0.0.0", True), ("", True),
                                                ("192.168.1.20", True), ("example.org", True)])
def test_shared_means_any_address_but_loopback(monkeypatch, address, is_shared):
    monkeypatch.setattr(_access.st, "get_option", lambda name: address)
    assert _access.shared() is is_shared


@pytest.fixture
def classroom(tmp_path, monkeypatch):
    """A shared dashboard (as --server.address 0.0.0.0 makes it) over a finished run and a stopped job."""
    monkeypatch.setattr(_access, "shared", lambda: True)
    monkeypatch.setattr(_access, "WRONG_PASSWORD_DELAY", 0.0)
    monkeypatch.delenv(_access.PASSWORD_ENV, raising=False)
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path))
    make_evaluated_run(tmp_path, "small")
    make_run(tmp_path, "stopped", {"state": "stopped", "host": socket.gethostname(), "error": "stopped by hand"},
             [0.3])
    (tmp_path / "stopped" / "job.json").write_text(json.dumps({"pid": 999_999, "devices": ["cpu"]}))
    return tmp_path


def labels(at):
    return {b.label for b in at.button}


def test_visitors_see_jobs_but_no_control_and_no_server_path(classroom):
    at = open_app("app_pages/train.py", run="small")
    assert not labels(at) & set(CONTROLS) - {"Unlock training"}
    assert not [t for t in at.text_input if "Path" in t.label]
    assert any("read-only" in i.value for i in at.info)  # no password set: says how to set one
    assert any("stopped" in m.value for m in at.markdown)  # the jobs are shown


def test_the_teachers_password_unlocks_this_session_only(classroom, monkeypatch):
    monkeypatch.setenv(_access.PASSWORD_ENV, "s3cret")
    at = open_app("app_pages/train.py", run="small")
    assert "Start training" not in labels(at)
    at.text_input(key="teacher_password_input").input("guess")
    next(b for b in at.button if b.label == "Unlock training").click().run()
    assert any("Wrong password" in e.value for e in at.error) and "Start training" not in labels(at)
    at.text_input(key="teacher_password_input").input("s3cret")
    next(b for b in at.button if b.label == "Unlock training").click().run()
    assert {"Start training", "Resume", "Lock"} <= labels(at)
    assert not any("s3cret" in str(getattr(e, "value", "")) for e in at.main)  # never shown back
    other = open_app("app_pages/train.py", run="small")  # another browser: locked
    assert "Start training" not in labels(other)
    next(b for b in at.button if b.label == "Lock").click().run()
    assert "Start training" not in labels(at)


def test_visitors_get_no_button_that_writes_into_a_run(classroom):
    at = open_app("app_pages/filters.py", run="small", query={"face": "102"})
    assert not any("Precompute the atlas" in b.label for b in at.button)
    assert any("has no filter atlas" in c.value for c in at.caption)


def test_explaining_pages_work_for_visitors(classroom):
    for page in ("app_pages/saliency.py", "app_pages/confusion.py", "app_pages/architecture.py",
                 "app_pages/history.py", "app_pages/learn.py"):
        at = open_app(page, run="small")
        assert not at.exception and not at.error, page


# ---------------------------------------------------------------- untrusted text is never Markdown

def rendered_texts(at):
    """What Streamlit renders as Markdown: markdown, captions, alerts, titles, headers, toasts."""
    kinds = ("markdown", "caption", "error", "warning", "info", "success", "title", "subheader", "header", "toast")
    return [e.value for kind in kinds for e in at.get(kind) if isinstance(getattr(e, "value", None), str)]


def test_markdown_in_run_names_errors_and_url_parameters_stays_text(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path))
    make_evaluated_run(tmp_path, "small")
    make_run(tmp_path, PAYLOADS[1], {"state": "failed", "host": socket.gethostname(), "error": " ".join(PAYLOADS)},
             [0.3], {"arch": PAYLOADS[0]})
    (tmp_path / PAYLOADS[1] / "job.json").write_text(json.dumps({"pid": 999_999, "devices": ["cpu"]}))
    seen = []
    for page, run, query in (("app_pages/train.py", "small", {}), ("app_pages/history.py", PAYLOADS[1], {}),
                             ("app_pages/architecture.py", PAYLOADS[1], {}),
                             ("app_pages/saliency.py", "small", {"face": " ".join(PAYLOADS), "split": PAYLOADS[2]}),
                             ("app_pages/confusion.py", "small", {"split": PAYLOADS[0]})):
        at = open_app(page, run=run, query=query)
        texts = rendered_texts(at)
        seen += texts
        assert not [t for t in texts for p in PAYLOADS if p in t], page
    assert any("javascript" in t for t in seen)  # the payloads were shown, escaped
