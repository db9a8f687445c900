import socket

import pytest
from streamlit_page import IDLE, settle

from helpers import make_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs with a history, "cnn3_ref" and "other", and an evaluated one, "evaluated": the tests only read."""
    from helpers import make_evaluated_run

    runs = tmp_path_factory.mktemp("runs")
    host = socket.gethostname()
    make_run(runs, "cnn3_ref", {"state": "finished", "host": host}, [0.41, 0.55, 0.52],
             {"arch": "cnn3", "metrics": {"val_acc": 0.55}})
    make_run(runs, "other", {"state": "finished", "host": host}, [0.3, 0.35], {"arch": "cnn3"})
    make_evaluated_run(runs)
    return runs


def open_page(page, url):
    page.goto(url)
    page.wait_for_selector(IDLE, timeout=60_000)
    assert page.locator("[data-testid='stException']").count() == 0


def test_deep_link_on_a_fresh_server_keeps_the_shell(page, start_app, runs, tmp_path):
    # the first request of a fresh server is a sub-page with a run in the URL
    base = start_app(runs)
    open_page(page, f"{base}/confusion?run=other")
    assert page.get_by_role("heading", name="Confusion matrix").is_visible()
    assert "other · cnn3" in page.get_by_role("combobox", name="Run").input_value()
    assert page.locator("[data-testid='stSidebarNav']").inner_text().count("Architecture") == 1
    page.screenshot(path=str(tmp_path / "confusion.png"))


def test_every_page_loads_without_error(page, base):
    for path, heading in (("/architecture", "Architecture"), ("", "Training history"),
                          ("/confusion", "Confusion matrix"), ("/mistakes", "Mistakes"),
                          ("/saliency", "Saliency"), ("/filters", "Filters"),
                          ("/webcam", "Webcam and video"),
                          ("/train", "Train"), ("/learn", "The math"), ("/report", "Report")):
        open_page(page, f"{base}{path}?run=cnn3_ref")
        assert page.get_by_role("heading", name=heading).is_visible()
    open_page(page, f"{base}/?run=cnn3_ref")
    page.wait_for_selector(".js-plotly-plot", timeout=30_000)
    # train and validation curves of the one run, in the loss panel and the accuracy panel
    assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 4
    open_page(page, f"{base}/architecture?run=nope")  # an unknown run: said, whole, below the page's header
    notice = page.locator("[data-testid='stAlert']").filter(has_text="No run named 'nope' here").bounding_box()
    header = page.locator("[data-testid='stHeader']").bounding_box()
    assert notice["y"] >= header["y"] + header["height"], (notice, header)


def test_back_leaves_a_page_in_two_presses_at_most(page, base):
    """Each write of the URL was a history entry of its own: Back took eight presses to leave Mistakes and four
    to leave One convolution. Now the sidebar's link is one entry and the page's URL one more."""
    open_page(page, f"{base}/confusion?run=evaluated")
    settle(page)
    for link, path, heading in (("Mistakes", "/mistakes", "Mistakes"),
                                ("One convolution", "/convolution", "One convolution, step by step"),
                                ("Saliency", "/saliency", "Saliency")):
        before = page.evaluate("history.length")
        page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=link, exact=True).click()
        page.get_by_role("heading", name=heading, exact=True).wait_for(timeout=60_000)
        settle(page)
        assert path in page.url and "run=evaluated" in page.url
        assert page.evaluate("history.length") - before <= 2, link
    for _ in range(2):
        page.go_back()
        settle(page)
    assert "/convolution?" in page.url
    assert page.get_by_role("heading", name="One convolution, step by step").is_visible()


def test_clicking_a_cell_shows_exactly_its_faces(page, base, runs):
    import pandas as pd

    predictions = pd.read_csv(runs / "evaluated" / "eval" / "PublicTest" / "predictions.csv")
    counts = predictions.groupby(["true", "pred"]).size()
    (true, pred), count = counts.idxmax(), int(counts.max())
    open_page(page, f"{base}/confusion?run=evaluated")
    page.wait_for_selector(".js-plotly-plot .scatterlayer .point", timeout=30_000)
    page.locator(".js-plotly-plot .scatterlayer .point").nth(true * 7 + pred).click(force=True)
    page.wait_for_selector("[data-testid='stImage']", timeout=30_000)
    page.wait_for_selector(IDLE, timeout=60_000)
    assert page.locator("[data-testid='stImage']").count() == min(count, 12)
    from fer_models.core.constants import EMOTIONS
    assert page.get_by_text(f"{count} {EMOTIONS[true]} faces").is_visible()
    assert page.locator("[data-testid='stException']").count() == 0


def test_evaluate_on_the_train_page_counts_the_faces_then_gives_the_result(page, start_app, tmp_path):
    import json

    from helpers import make_evaluated_run, write_fer_csv

    data = write_fer_csv(tmp_path / "faces.csv", {"Training": 20, "PublicTest": 3000})
    run = make_evaluated_run(tmp_path / "runs", "tiny")
    (run / "config.json").write_text(json.dumps({"args": {"model": "cnn3", "epochs": 1, "data": str(data),
                                                          "train_split": "Training", "val_split": "PublicTest"}}))
    (run / "job.json").write_text(json.dumps({"pid": 1, "command": ["python"], "devices": ["cpu"], "started": 1.0}))
    open_page(page, f"{start_app(tmp_path / 'runs')}/train")
    # every text the bar shows, however briefly: the result replaces it within seconds
    page.evaluate("""() => { window.said = []; new MutationObserver(() => document.querySelectorAll(
        "[data-testid='stProgress']").forEach(e => window.said.push(e.innerText))).observe(document.body,
        {subtree: true, childList: true, characterData: true}); }""")
    page.get_by_role("button", name="Evaluate").click()
    # scored in a thread of the server: the bar shows while no script runs, the page live (it waited, greyed)
    page.wait_for_function("""() => document.querySelector("[data-testid='stProgress']") &&
        document.querySelector("[data-testid='stApp'][data-test-script-state='notRunning']")""", timeout=60_000)
    page.get_by_text("PublicTest: accuracy").wait_for(timeout=120_000)
    said = page.evaluate("window.said")
    assert any("of 3,000 faces scored" in text for text in said), said
    assert page.get_by_role("link", name="Open its confusion matrix").get_attribute("href").endswith(
        "confusion?run=tiny")


def test_the_open_per_class_table_stays_open_when_a_filter_changes(page, base):
    """Its title counts the faces the filters keep: titled by it, the table folded shut at every filter change."""
    open_page(page, f"{base}/mistakes?run=evaluated")
    table = page.locator("[data-testid='stExpander']").filter(has_text="Per class")
    table.locator("summary").click()
    table.locator("[data-testid='stDataFrame']").wait_for(timeout=30_000)
    settle(page)
    # typed, not picked from the open list: a list opened while the page still drew itself closed again
    page.locator("[data-testid='stSelectbox']").filter(has_text="True class").locator("input").click()
    page.keyboard.type("happy")
    page.keyboard.press("Enter")
    page.get_by_text("faces the choices below keep").wait_for(timeout=30_000)
    page.wait_for_selector(IDLE, timeout=60_000)
    assert table.locator("details").get_attribute("open") is not None
    assert table.locator("[data-testid='stDataFrame']").is_visible()


def test_an_out_of_range_setting_is_said_when_start_is_pressed(page, base):
    """With the range as the box's bounds, the browser kept "0 epochs" to itself and ignored Start: no job, no
    word. Now the page gets the value and says what is wrong."""
    open_page(page, f"{base}/train")
    settle(page)
    page.get_by_role("spinbutton", name="Epochs").fill("0")
    page.get_by_role("spinbutton", name="Rotation °").fill("60")
    page.get_by_role("button", name="Start training").click()
    settle(page)
    said = page.locator("[data-testid='stAlertContentError']").inner_text()
    assert "Not started" in said and "Epochs must be at least 1" in said and "Rotation ° must be at most 45" in said
