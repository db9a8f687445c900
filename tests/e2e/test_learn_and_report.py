"""The report file in Chromium with no network, and the Learn pages in a real browser."""
from streamlit_page import settle

from helpers import make_reported_run


def test_report_opens_offline_with_figures_pictures_and_equations(browser, tmp_path):
    _, report = make_reported_run(tmp_path)
    context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(report.as_uri())
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=30_000)
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert errors == []
    assert page.locator(".js-plotly-plot").count() == 2
    assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 3
    # the cartesian bundle the report carries draws each kind of trace it holds: bars and the heatmap too
    assert page.locator(".js-plotly-plot .barlayer .trace").count() >= 1
    assert page.locator(".js-plotly-plot .heatmaplayer image").count() == 1
    # every inline picture decoded; every equation laid out by the browser's MathML engine
    assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    heights = page.evaluate("[...document.querySelectorAll('math')].map(m => m.getBoundingClientRect().height)")
    assert len(heights) >= 15 and min(heights) > 10
    # a picture's PNG link saves that picture (its data is written once, in the picture)
    first = page.locator("figure").first
    with page.expect_download() as download:
        first.get_by_role("link", name="PNG").click()
    saved = tmp_path / "picture.png"
    download.value.save_as(saved)
    assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and download.value.suggested_filename.endswith(".png")
    import base64
    src = first.locator("img").get_attribute("src")
    assert saved.read_bytes() == base64.b64decode(src.split(",", 1)[1])
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    context.close()


def test_math_page_and_a_report_download_in_the_browser(page, module_app, tmp_path):
    base = module_app[0]
    page.goto(f"{base}/learn?run=small")
    # drawn to its end: the idle state alone can be seen before a fresh page's first run starts
    page.get_by_text("nn.Conv2d returns").wait_for(timeout=60_000)
    settle(page, timeout=60_000)
    assert page.locator(".katex").count() >= 3  # st.latex drawn
    assert page.get_by_text("nn.Conv2d returns").count() == 1
    # resnet10_fer's 12 layers: the walk's table shows them all, so the wheel over it scrolls the page
    page.locator("[data-testid='stSelectbox']").filter(has_text="Model").locator("input").click()
    page.keyboard.type("resnet10_fer")
    page.keyboard.press("Enter")
    settle(page, timeout=60_000)
    walk = page.locator("[data-testid='stDataFrame']").filter(has_text="naive wrong").locator(".dvn-scroller")
    assert walk.evaluate("s => s.scrollHeight - s.clientHeight") <= 1
    page.get_by_role("tab", name="Batch normalisation").click()  # drawn on the click: only the open tab is
    settle(page, timeout=60_000)
    assert page.get_by_text("the derivation holds").count() == 1 and page.get_by_text("nn.Conv2d returns").count() == 0
    page.get_by_text("All values equal", exact=True).click()
    settle(page, timeout=60_000)
    assert page.get_by_text("(= β)").is_visible()
    page.screenshot(path=str(tmp_path / "learn.png"), full_page=True)

    page.goto(f"{base}/report?run=small")
    # the page drawn to its end (the idle state alone can be seen before a fresh page's first run starts, and a
    # slider moved during that run is reset by it)
    page.locator("code").filter(has_text="--faces-per-class 2 --filters 6").wait_for(timeout=60_000)
    settle(page, timeout=60_000)
    for slider in page.get_by_role("slider").all():  # the fewest faces and filters: quick
        slider.focus()
        page.keyboard.press("Home")
        settle(page, timeout=60_000)
    page.locator("code").filter(has_text="--faces-per-class 1 --filters 1").wait_for(timeout=60_000)
    page.get_by_role("button", name="Export report").click()
    button = page.get_by_role("button", name="Download small_report.html")
    button.wait_for(timeout=180_000)
    with page.expect_download() as download:
        button.click()
    saved = tmp_path / "downloaded.html"
    download.value.save_as(saved)
    text = saved.read_text()
    assert ">7. The math<" in text and text.count('download="saliency_') == 7
