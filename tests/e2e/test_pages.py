import socket

import pytest
from streamlit_page import IDLE

from helpers import make_run


@pytest.fixture
def runs(tmp_path):
    host = socket.gethostname()
    make_run(tmp_path, "cnn3_ref", {"state": "finished", "host": host}, [0.41, 0.55, 0.52],
             {"arch": "cnn3", "metrics": {"val_acc": 0.55}})
    make_run(tmp_path, "other", {"state": "finished", "host": host}, [0.3, 0.35], {"arch": "cnn3"})
    return tmp_path


def open_page(page, url):
    page.goto(url)
    page.wait_for_selector(IDLE, timeout=60_000)
    assert page.locator("[data-testid='stException']").count() == 0


def test_deep_link_on_a_fresh_server_keeps_the_shell(page, start_app, runs):
    # the first request of a fresh server is a sub-page with a run in the URL
    base = start_app(runs)
    open_page(page, f"{base}/confusion?run=other")
    assert page.get_by_role("heading", name="Confusion matrix").is_visible()
    assert "other · cnn3" in page.get_by_role("combobox", name="Run").input_value()
    assert page.locator("[data-testid='stSidebarNav']").inner_text().count("Architecture") == 1
    page.screenshot(path=str(runs / "confusion.png"))


def test_every_page_loads_without_error(page, start_app, runs):
    base = start_app(runs)
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


def test_clicking_a_cell_shows_exactly_its_faces(page, start_app, tmp_path):
    import pandas as pd

    from helpers import make_evaluated_run
    run = make_evaluated_run(tmp_path / "runs")
    predictions = pd.read_csv(run / "eval" / "PublicTest" / "predictions.csv")
    counts = predictions.groupby(["true", "pred"]).size()
    (true, pred), count = counts.idxmax(), int(counts.max())
    base = start_app(tmp_path / "runs")
    open_page(page, f"{base}/confusion?run=evaluated")
    page.wait_for_selector(".js-plotly-plot .scatterlayer .point", timeout=30_000)
    page.locator(".js-plotly-plot .scatterlayer .point").nth(true * 7 + pred).click(force=True)
    page.wait_for_selector("[data-testid='stImage']", timeout=30_000)
    page.wait_for_selector(IDLE, timeout=60_000)
    assert page.locator("[data-testid='stImage']").count() == min(count, 12)
    from fer_models.core.constants import EMOTIONS
    assert page.get_by_text(f"{count} {EMOTIONS[true]} faces").is_visible()
    assert page.locator("[data-testid='stException']").count() == 0
