"""Hostile run names, prediction ids, upload names and URL parameters, shown on every page that names them: as
text, never as Markdown or HTML (a crafted name could plant a javascript: link or load a remote image). Each
page is walked for everything Streamlit renders as Markdown: texts, alerts, widget labels and help, radio
options, image captions, progress texts, expander and popover labels."""
import json
import os
import re
import socket
import threading
import time

import pytest
from google.protobuf.descriptor import FieldDescriptor
from warm_cli import run as warm

from helpers import make_evaluated_run, make_run, open_app, shown

LINK = "[a](javascript:alert(1))"
IMAGE = r"![r](http:\\example.invalid\r.png)"
HTML = "<img src=x onerror=alert(1)>"
STOPPED = "[stopped](javascript:alert(2))"    # a dashboard job: Resume and Delete fail, naming it
RUNNING = "<img src=y onerror=alert(3)>"      # a job running on another machine: Stop fails, naming it
UPLOAD = r"![x](http:\\example.invalid\x.png) http://example.invalid/y www.example.invalid a@example.invalid.png"
VIDEO = "[clip](javascript:alert(4)).mp4"

# Streamlit shows a selectbox's or a multiselect's options as plain text (only a radio's, pills' and a segmented
# control's are Markdown), and these kinds are never Markdown: code, tables, charts, st.text, st.html (escaped
# where it is built)
PLAIN_OPTIONS = {"selectbox", "multiselect"}
NOT_MARKDOWN = {"code", "html", "json", "dataframe", "arrow_data_frame", "text", "plotly_chart", "exception",
                "vega_lite_chart", "deck_gl_json_chart", "video", "audio"}
MARKDOWN_FIELDS = {"label", "body", "caption", "text", "help", "content"}


def _strings(message):
    """(field name, text) of every string in a protobuf message, nested ones included."""
    for field, value in message.ListFields():
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
        values = value if repeated else [value]
        for item in values:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                yield from _strings(item)
            elif field.type == FieldDescriptor.TYPE_STRING:
                yield field.name, item


def rendered_as_markdown(at) -> list[str]:
    """Every text of the page (main area and sidebar) that Streamlit renders as Markdown."""
    texts = []
    for root in (at.main, at.sidebar):
        for node in root:
            kind, proto = getattr(node, "type", ""), getattr(node, "proto", None)
            if proto is None or kind in NOT_MARKDOWN:
                continue
            for name, text in _strings(proto):
                if name in MARKDOWN_FIELDS or (name == "options" and kind not in PLAIN_OPTIONS):
                    texts.append(text)
    return texts


def _unescaped(text: str, token: str) -> bool:
    """`token` occurs where Markdown acts on it: after an even number of backslashes (none, or escaped ones)."""
    at = text.find(token)
    while at >= 0:
        slashes = len(text[:at]) - len(text[:at].rstrip("\\"))
        if slashes % 2 == 0:
            return True
        at = text.find(token, at + 1)
    return False


# what GFM turns into a link in text once escapes are undone (mdast-util-gfm-autolink-literal's patterns)
BARE_LINK = re.compile(r"(?i)(https?://|www\.)[-.\w]|[-.\w+]+@[-\w]+\.[-\w]")


def live_markup(at) -> list[str]:
    """The texts in which a link, an image or an HTML tag would take effect, or a bare address be linked."""
    return [t for t in rendered_as_markdown(at) if any(_unescaped(t, token) for token in ("](", "<img", "<b>"))
            or BARE_LINK.search(re.sub(r"\\(.)", r"\1", t))]


def everything_shown(at) -> str:
    return "\n".join(shown(t) for t in rendered_as_markdown(at))


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory):
    """Two evaluated cnn3 runs named as links and images, a third whose eval/PublicTest is a link out of the run,
    a stopped dashboard job and one running on another machine, both named as links or HTML."""
    root = tmp_path_factory.mktemp("hostile") / "runs"
    for name in (LINK, IMAGE, HTML):
        make_evaluated_run(root, name)
    outside = root.parent / "elsewhere"
    (root / HTML / "eval" / "PublicTest").rename(outside)
    (root / HTML / "eval" / "PublicTest").symlink_to(outside, target_is_directory=True)
    stopped = make_run(root, STOPPED, {"state": "stopped", "host": socket.gethostname(), "error": f"killed {LINK}"})
    (stopped / "job.json").write_text(json.dumps({"pid": 999_999, "devices": ["cpu"]}))
    (stopped / "meta.json").write_text("{not json")  # Delete cannot tell if it is shipped: refused, naming it
    # out of the form's range (Start from clamps it and says so) and of the settings' (Resume refuses it)
    (stopped / "config.json").write_text(json.dumps({"args": {"model": "cnn3", "epochs": 10**6}}))
    running = make_run(root, RUNNING, {"state": "running", "host": "elsewhere", "heartbeat": time.time()})
    (running / "job.json").write_text(json.dumps({"pid": 999_999, "devices": ["cpu"]}))
    return root


def _photo_bytes() -> bytes:
    import cv2

    from helpers import face_photo

    ok, png = cv2.imencode(".png", face_photo(2))
    assert ok
    return png.tobytes()


def _train(at):
    """Start from the stopped job's settings, press its Resume and its Delete, and the other job's Stop: each
    refusal names the run."""
    at.selectbox(key="job_recipe").select(STOPPED).run()
    assert any("clamped" in shown(w.value) and STOPPED in shown(w.value) for w in at.warning)
    assert not live_markup(at), live_markup(at)
    texts = everything_shown(at)
    for key, run, words in ((f"resume_{STOPPED}", STOPPED, "cannot be resumed"),
                            (f"delete_{STOPPED}", STOPPED, "shipped"), (f"stop_{RUNNING}", RUNNING, "no live job")):
        at.button(key=key).click().run()
        assert not at.exception, at.exception
        assert not live_markup(at), (key, live_markup(at))
        assert any(words in shown(e.value) and run in shown(e.value) for e in at.error), (key, at.error)
        texts += everything_shown(at)
    return texts


def _report(at):
    next(b for b in at.button if b.label == "Export report").click().run()
    assert at.get("download_button"), "no download button after Export"
    return everything_shown(at)


PAGES = {
    # page, run, query parameters, session state, what to do there, what must be said
    "saliency": ("app_pages/saliency.py", LINK, {}, {}, None, LINK),
    "face-address": ("app_pages/saliency.py", LINK, {"face": "http://example.invalid/x"}, {}, None, "has id"),
    "upload": ("app_pages/saliency.py", LINK, {}, {"_face_source": "Upload"}, None, UPLOAD),
    "math": ("app_pages/learn.py", IMAGE, {}, {"math_tab": "Softmax and cross-entropy"}, None, IMAGE),
    "train": ("app_pages/train.py", LINK, {}, {}, _train, STOPPED),
    "report": ("app_pages/report.py", LINK, {}, {}, _report, LINK),
    "mistakes": ("app_pages/mistakes.py", LINK, {"with": IMAGE}, {}, None, IMAGE),
    "video": ("app_pages/webcam.py", LINK, {}, {"webcam_mode": "Video file"}, None, VIDEO),
    "confusion-link": ("app_pages/confusion.py", HTML, {}, {}, None, "is a link"),
    "mistakes-link": ("app_pages/mistakes.py", HTML, {}, {}, None, "is a link"),
    "lesson-link": ("app_pages/lesson.py", HTML, {"lesson": "confusion"}, {}, None, "is a link"),
    "quiz-link": ("app_pages/quiz.py", HTML, {}, {}, None, "is a link"),
}


@pytest.mark.parametrize("case", list(PAGES))
def test_hostile_names_are_shown_as_text_on_every_page(hostile_root, monkeypatch, case):
    page, run, query, state, act, said = PAGES[case]
    monkeypatch.setenv("FER_STUDIO_RUNS", str(hostile_root))
    state = dict(state)
    if case == "upload":
        state["_upload"] = (UPLOAD, _photo_bytes())
    if case == "report":  # the label under test, not the report: one made in a blink
        monkeypatch.setattr("fer_models.teaching.report.build_report", lambda *a, **k: "<html></html>")
    (hostile_root / RUNNING / "status.json").write_text(json.dumps(
        {"state": "running", "host": "elsewhere", "heartbeat": time.time()}))  # fresh: the job reads as running
    busy = threading.Event()
    if case == "video":  # a clip being analysed: the page polls its progress
        from app_pages._video import VideoJob

        thread = threading.Thread(target=busy.wait, args=(60,), daemon=True)
        thread.start()
        folder = hostile_root.parent / "video_job"
        folder.mkdir(exist_ok=True)
        state.update(_video_upload=(VIDEO, b""), video_job=VideoJob(VIDEO, folder, run, 1.0, 4.0, thread=thread))
    try:
        at = open_app(page, run=run, query=query, state=state)
        texts = act(at) if act else everything_shown(at)
        assert not live_markup(at), live_markup(at)
        assert said in texts, f"{said!r} not shown on {page}"
        if case == "video":
            assert any(VIDEO in shown(p.proto.text) for p in at.get("progress"))
        if case.endswith("-link"):
            assert at.error and not at.exception
    finally:
        busy.set()


def test_a_history_read_problem_is_said_without_the_cells_text(tmp_path, monkeypatch):
    from app_pages import _shared
    from fer_models.runs.folder import RunFolder, RunProblem
    from fer_models.runs.registry import list_runs

    make_run(tmp_path, LINK, {"state": "finished"}, [0.3, 0.4], {"arch": "cnn3"})
    listed = list_runs(tmp_path)  # listed while its history was good; then it changes under the page
    history = tmp_path / LINK / "history.csv"
    history.write_text(history.read_text().replace("0.4", IMAGE.replace(",", "")))
    with pytest.raises(RunProblem) as err:
        RunFolder(tmp_path / LINK).history()
    assert "example.invalid" not in str(err.value) and "column val_acc (line 3)" in str(err.value)
    monkeypatch.setattr(_shared, "cached_runs", lambda root: listed)
    monkeypatch.setenv("FER_STUDIO_RUNS", str(tmp_path))
    at = open_app("app_pages/history.py", run=LINK)
    assert not live_markup(at), live_markup(at)
    assert any("history.csv: has a value that is not a finite number" in shown(w.value) for w in at.warning)
    assert "example.invalid" not in everything_shown(at)


# ---------------------------------------------------------------- the README's table


def test_the_models_table_shows_hostile_run_folders_as_text(tmp_path):
    markdown_it = pytest.importorskip("markdown_it")
    from fer_models.runs.registry import models_table

    names = [LINK, IMAGE, HTML, "a|b", "two\nlines", "`tick`", "x_y_", "ok"]
    for name in names:
        make_run(tmp_path, name, {"state": "finished"}, [0.5],
                 {"arch": f"{HTML}|{LINK}", "training": {"device_name": f"<b>dev</b>\r|{IMAGE}", "precision": "`x"}})
        config = {"args": {"model": "cnn3", "data": f"/d/{LINK}; rm -rf ~.csv"}}
        (tmp_path / name / "config.json").write_text(json.dumps(config))
    (tmp_path / "bad<img src=z>").mkdir()
    (tmp_path / "bad<img src=z>" / "status.json").write_text("[" * 10)
    table = models_table(tmp_path)
    rows = table.splitlines()
    assert len(rows) == 2 + len(names) + 1  # a newline in a name did not start a row
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(table)
    assert html.count("<tr>") == len(rows) - 1  # the separator row is no row
    assert html.count("<td>") == 15 * (len(rows) - 2)  # no | in a name or a value split a cell
    assert "<img" not in html and "<a " not in html and "<b>" not in html and "<br" not in html
    for name in (LINK, IMAGE, "&lt;img src=x onerror=alert(1)&gt;", "a|b", "two lines", "x_y_", "bad&lt;img src=z&gt;"):
        assert f"<td>{name}" in html, name
    row = next(r for r in rows if r.startswith("| ok |"))
    assert "--out artifacts/runs/ok_again" in row and "--data 'path/to/[a](javascript:alert(1)); rm -rf ~.csv'" in row


def test_images_per_second_comes_from_the_unrounded_figures(tmp_path):
    from fer_models.runs.registry import models_table

    make_run(tmp_path, "r", {"state": "finished"}, [0.5],
             {"arch": "cnn3", "training": {"seconds": 3759.1, "epochs_done": 40, "images_per_second": 305.5,
                                           "split_sizes": {"Training": 28709, "PublicTest": 3589}}})
    assert models_table(tmp_path).splitlines()[2].split(" | ")[7] == "305"  # 28709 × 40 / 3759.1 = 305.49


# ---------------------------------------------------------------- a job no trainer can be confirmed for


@pytest.mark.parametrize("ahead", [1e12, 3600])  # seconds ahead of now (as parameters: xdist workers agree)
def test_a_heartbeat_in_the_future_reads_interrupted(tmp_path, ahead):
    from fer_models.runs.jobs import delete, job_state, resume

    heartbeat = ahead if ahead > 1e9 else time.time() + ahead
    run = make_run(tmp_path, "r", {"state": "running", "host": "elsewhere", "heartbeat": heartbeat}, [0.3])
    (run / "config.json").write_text(json.dumps({"args": {"model": "cnn3", "epochs": 10**6}}))
    assert job_state(run)["state"] == "interrupted" and "future" in job_state(run)["error"]
    from fer_models.runs.jobs import JobError

    with pytest.raises(JobError, match="cannot be resumed") as err:  # past the "still running" refusal
        resume(run, tmp_path)
    assert "still running" not in str(err.value)
    delete(run, tmp_path)
    assert not run.exists()


def test_a_heartbeat_a_few_seconds_ahead_is_a_clock_difference(tmp_path):
    from fer_models.runs.registry import read_status

    run = make_run(tmp_path, "r", {"state": "running", "host": "elsewhere", "heartbeat": time.time() + 20}, [0.3])
    assert read_status(run)["state"] == "running"


# ---------------------------------------------------------------- messages that say what is there


def test_deep_metrics_name_the_run_not_the_split(tmp_path, run_env):

    run = make_run(tmp_path, "myrun", {"state": "finished"}, [0.3], evaluation="PublicTest")
    (run / "eval" / "PublicTest" / "metrics.json").write_text("[" * 100_000 + "]" * 100_000)
    done = warm(["mistakes", "--run", str(run)], env=run_env, timeout=120)
    assert done.returncode == 2 and "run myrun: eval/PublicTest/metrics.json: not usable JSON" in done.stderr, \
        done.stderr


def test_a_pipe_a_device_or_a_folder_is_called_what_it_is(tmp_path, capsys):
    from fer_models.core.guards import UntrustedFileError, regular_file
    from fer_models.runs.registry import main

    os.mkfifo(tmp_path / "pipe.md")
    (tmp_path / "folder.md").mkdir()
    for path, words in ((tmp_path / "pipe.md", "is a named pipe"), ("/dev/null", "is a device"),
                        (tmp_path / "folder.md", "is a folder"), (tmp_path / "none.md", "no such file")):
        with pytest.raises(UntrustedFileError, match=words):
            regular_file(path)
        assert main(["--root", str(tmp_path), "--readme", str(path)]) == 2
        assert words in capsys.readouterr().err
    run = make_run(tmp_path, "r", {"state": "finished"}, evaluation="PublicTest")
    (run / "status.json").unlink()
    os.mkfifo(run / "status.json")
    from fer_models.runs.registry import list_runs
    assert "status.json: a named pipe, not a regular file" in list_runs(tmp_path)[0].error
