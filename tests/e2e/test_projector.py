"""Every page at a projector's 1280×720: nothing cut off on the right, the sidebar whole, Plotly's labels inside
their figures, a confusion cell's faces on screen beside the matrix without scrolling, and the matrix grown to
a 1920x1080 window."""
import re

import pytest
from streamlit_page import settle

from helpers import ROOT, make_evaluated_run

PAGES = {"architecture": "Architecture", "": "Training history", "confusion": "Confusion matrix",
         "mistakes": "Mistakes", "saliency": "Saliency", "filters": "Filters", "webcam": "Webcam and video",
         "train": "Train", "learn": "The math", "report": "Report"}


@pytest.fixture
def projector(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two evaluated runs, "evaluated" with eight epochs of history and "other", which the tests only read."""
    from fer_models.runs.folder import RunFolder

    runs = tmp_path_factory.mktemp("runs")
    run = make_evaluated_run(runs)
    make_evaluated_run(runs, "other")
    RunFolder(run).write_history([{"epoch": e, "train_loss": 1.9 - 0.1 * e, "train_acc": 0.2 + 0.05 * e,
                                   "val_loss": 1.8 - 0.1 * e, "val_acc": 0.25 + 0.05 * e, "lr": 0.1 / e,
                                   "seconds": 60.0} for e in range(1, 9)])
    return runs


# every panel's tick labels and axis titles: Plotly names a second panel's .x2tick and .g-x2title, which
# '.xtick text' missed (the report's bottom row of training charts was cut off unseen)
AXIS_TEXT = ('.xaxislayer-above text, .yaxislayer-above text, [class^="g-x"][class$="title"] text, '
             '[class^="g-y"][class$="title"] text')


def overflow_of_main(page) -> int:
    return page.locator("[data-testid='stMain']").evaluate("e => e.scrollWidth - e.clientWidth")


def plotly_labels_outside(page) -> list[str]:
    """Tick labels and axis titles of every Plotly figure that reach beyond its SVG."""
    return page.evaluate("""AXIS_TEXT => {
        const out = [];
        for (const plot of document.querySelectorAll('.js-plotly-plot')) {
            const box = plot.querySelector('svg.main-svg').getBoundingClientRect();
            for (const t of plot.querySelectorAll(AXIS_TEXT)) {
                const r = t.getBoundingClientRect();
                if (!r.width) continue;
                if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 ||
                    r.bottom > box.bottom + 1) out.push(t.textContent);
            }
        }
        return out;
    }""", AXIS_TEXT)


def illegible_labels(page) -> list[str]:
    """Plotly's tick labels, axis titles and legend entries under 14 px or under 4.5:1 against white (WCAG AA),
    and tick labels that overlap a neighbour on their axis."""
    return page.evaluate("""AXIS_TEXT => {
        const lum = c => { const [r, g, b] = c.match(/[0-9.]+/g).slice(0, 3).map(v => {
            v = v / 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
        const out = [];
        for (const plot of document.querySelectorAll('.js-plotly-plot')) {
            const texts = plot.querySelectorAll(AXIS_TEXT + ', .legendtext, .cbaxis text, .cbtitle text');
            for (const t of texts) {
                if (!t.getBoundingClientRect().width) continue;
                const style = getComputedStyle(t);
                const size = parseFloat(style.fontSize), contrast = 1.05 / (lum(style.fill) + 0.05);
                if (size < 14 || contrast < 4.5) out.push(`${t.textContent}: ${size}px ${contrast.toFixed(1)}:1`);
            }
            for (const axis of plot.querySelectorAll('.xaxislayer-above, .yaxislayer-above')) {
                const labels = [...axis.querySelectorAll('text')].filter(t => t.getBoundingClientRect().width);
                for (let i = 1; i < labels.length; i++) {
                    const a = labels[i - 1].getBoundingClientRect(), b = labels[i].getBoundingClientRect();
                    if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1)
                        out.push(`"${labels[i - 1].textContent}" overlaps "${labels[i].textContent}"`);
                }
            }
        }
        return out;
    }""", AXIS_TEXT)


def faint_captions(page) -> list[str]:
    """Captions (Streamlit's and images') under 4.5:1 against white, the contrast WCAG AA asks of text: their
    colour blended with white by its alpha and the opacity of the element and its ancestors."""
    return page.evaluate("""() => {
        const contrast = e => {
            let alpha = 1;
            for (let x = e; x; x = x.parentElement) alpha *= Number(getComputedStyle(x).opacity);
            const [r, g, b, a = 1] = getComputedStyle(e).color.match(/[0-9.]+/g).map(Number);
            const lum = [r, g, b].map(v => (255 - (255 - v) * a * alpha) / 255)
                .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
                .reduce((s, v, i) => s + [0.2126, 0.7152, 0.0722][i] * v, 0);
            return 1.05 / (lum + 0.05);
        };
        const texts = document.querySelectorAll("[data-testid='stCaptionContainer'] p, [data-testid='stImageCaption']");
        return [...texts].filter(e => e.innerText.trim() && contrast(e) < 4.5)
            .map(e => `${e.innerText.trim().slice(0, 40)}: ${contrast(e).toFixed(1)}:1`);
    }""")


def cut_labels(page) -> list[str]:
    """Metric and widget labels the browser cuts with an ellipsis ("Calibration error (E…"): the text's width in
    its own font against the box that clips it (the clipping box reports no overflow of its own)."""
    return page.evaluate("""() => {
        const ctx = document.createElement('canvas').getContext('2d');
        return [...document.querySelectorAll('.stMarkdownEllipsis')].filter(box => {
            const text = box.innerText.trim();
            ctx.font = getComputedStyle(box.querySelector('p') || box).font;
            return text && ctx.measureText(text).width > box.clientWidth + 1;
        }).map(box => box.innerText.trim());
    }""")


def choices_cut(page) -> list[str]:
    """Select boxes whose chosen option is wider than its box ("Integrated Gradien…"): the box is an input."""
    return page.evaluate("""() => {
        const ctx = document.createElement('canvas').getContext('2d');
        return [...document.querySelectorAll("[data-testid='stSelectbox'] input")].filter(box => {
            const style = getComputedStyle(box);
            ctx.font = style.font;
            const room = box.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
            return box.offsetParent !== null && ctx.measureText(box.value).width > room + 1;
        }).map(box => box.value);
    }""")


def names_broken(page) -> list[str]:
    """Picture captions with a hyphenated name broken across two lines ("Guided Grad-" / "CAM" under a small map)."""
    return page.evaluate("""() => {
        const broken = [];
        for (const caption of document.querySelectorAll("[data-testid='stImageCaption']")) {
            const walk = document.createTreeWalker(caption, NodeFilter.SHOW_TEXT);
            for (let node = walk.nextNode(); node; node = walk.nextNode()) {
                for (const word of node.data.matchAll(/\\S+-\\S+/g)) {
                    const range = document.createRange();
                    range.setStart(node, word.index);
                    range.setEnd(node, word.index + word[0].length);
                    const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
                    if (tops.size > 1) broken.push(word[0].replace(/\\u2060/g, ''));
                }
            }
        }
        return broken;
    }""")


def tables_cut(page) -> list[str]:
    """Tables on show whose columns run past their right edge: the last headers are then cut, and the grid shows
    its sideways scrollbar only under the pointer. Their first header names each."""
    return page.evaluate("""() => [...document.querySelectorAll("[data-testid='stDataFrame'] .dvn-scroller")]
        .filter(s => s.offsetParent !== null && s.scrollWidth > s.clientWidth + 1)
        .map(s => s.closest("[data-testid='stDataFrame']").getAttribute('aria-label') || 'a table')""")


def test_every_page_fits_a_projector(projector, base):
    projector.goto(f"{base}/?run=evaluated")
    for path, title in PAGES.items():  # through the sidebar, as a presenter goes (test_pages opens each URL)
        projector.locator("[data-testid='stSidebarNav']").get_by_role("link", name=title, exact=True).click()
        projector.get_by_role("heading", name=title, exact=True).wait_for(timeout=60_000)
        settle(projector)
        # walked in one session, the face picker's widgets meet again on Filters after Saliency (its face id
        # once came up empty there, with "No PublicTest face has id ''")
        errors = projector.locator("[data-testid='stAlertContentError']").all_inner_texts()
        assert errors == [], f"/{path}: {errors}"
        if path in ("", "confusion"):
            projector.wait_for_selector(".js-plotly-plot .xtick text", timeout=30_000)
        # the result, what the page is for, on the first screen: Saliency's map, Filters' first pattern
        result = {"saliency": "over the face", "filters": "filter #"}.get(path)
        if result:
            shown = projector.locator("[data-testid='stImage']").filter(has_text=result).first
            shown.wait_for(timeout=60_000)
            box = shown.locator("img").bounding_box()
            assert box["y"] >= 0 and box["y"] + box["height"] <= 720, f"/{path}: the result ends at {box}"
        assert overflow_of_main(projector) <= 0, f"/{path}: the main area scrolls sideways"
        caption = projector.locator("[data-testid='stSidebar'] [data-testid='stCaptionContainer']").first
        box = caption.bounding_box()
        assert box and box["y"] + box["height"] <= 720, f"/{path}: the run's details end below the screen"
        sidebar = projector.locator("[data-testid='stSidebarContent']")
        assert sidebar.evaluate("e => e.scrollHeight - e.clientHeight") <= 1, f"/{path}: the sidebar scrolls"
        assert plotly_labels_outside(projector) == [], f"/{path}: labels cut off"
        assert illegible_labels(projector) == [], f"/{path}: labels too small, too faint or overlapping"
        assert cut_labels(projector) == [], f"/{path}: labels cut short"
        assert faint_captions(projector) == [], f"/{path}: captions too faint"
        assert tables_cut(projector) == [], f"/{path}: a table wider than its box"
        assert choices_cut(projector) == [], f"/{path}: a chosen option cut short"


def cell_box(page) -> dict:
    page.locator(".js-plotly-plot .hm image").wait_for(timeout=30_000)
    return page.locator(".js-plotly-plot .hm image").bounding_box()


def test_a_clicked_cell_shows_its_first_face_on_screen_and_stays_legible(projector, base, runs):
    import pandas as pd

    predictions = pd.read_csv(runs / "evaluated" / "eval" / "PublicTest" / "predictions.csv")
    true, pred = predictions.groupby(["true", "pred"]).size().idxmax()
    projector.goto(f"{base}/confusion?run=evaluated")
    settle(projector)
    box = cell_box(projector)
    side = box["width"] / 7
    assert abs(box["width"] - box["height"]) < 1 and box["y"] + box["height"] <= 720  # whole and square
    # near the cell's corner, not its centre: a click anywhere in a cell selects it
    projector.mouse.click(box["x"] + (pred + 0.9) * side, box["y"] + (true + 0.1) * side)
    projector.wait_for_selector("[data-testid='stImage']", timeout=30_000)
    settle(projector)
    first = projector.locator("[data-testid='stImage']").first.bounding_box()
    assert 0 <= first["y"] and first["y"] + first["height"] <= 720  # seen without scrolling
    assert projector.locator(".js-plotly-plot .hm image").count() == 1  # the colours: an image, nothing fades
    assert projector.locator(".js-plotly-plot .shapelayer path").count() == 1  # the outline
    assert "cell=" in projector.url  # a refresh or Back keeps it
    projector.reload()
    settle(projector)
    projector.wait_for_selector("[data-testid='stImage']", timeout=30_000)


def test_two_runs_compared_show_both_maps_on_the_first_screen(projector, base):
    projector.goto(f"{base}/saliency?run=evaluated")
    settle(projector)
    projector.locator("[data-testid='stSelectbox']").filter(has_text="Compare with another run").click()
    projector.get_by_role("option").filter(has_text="vs other").first.click()
    settle(projector)
    for name in ("evaluated", "other"):
        shown = projector.locator("[data-testid='stImage']").filter(has_text=f"{name}: ").filter(
            has_text="over the face").first
        shown.wait_for(timeout=60_000)
        box = shown.locator("img").bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= 720, f"{name}'s map ends at {box}"


def test_the_mistakes_faces_line_up_in_rows(projector, base):
    projector.goto(f"{base}/mistakes?run=evaluated")
    settle(projector)
    faces = projector.locator("[data-testid='stImage'] img")
    faces.nth(6).wait_for(timeout=60_000)
    tops = [round(faces.nth(i).bounding_box()["y"]) for i in range(min(faces.count(), 12))]
    rows = [tops[i:i + 6] for i in range(0, len(tops), 6)]
    assert all(max(row) - min(row) <= 1 for row in rows), tops  # every face of a row at one height
    assert rows[1][0] > rows[0][0]
    # each face as wide as its column, at any window width: at 1920 px they were 104 px in 230-px columns
    projector.set_viewport_size({"width": 1920, "height": 1080})
    settle(projector)
    widths = faces.first.evaluate("i => [i.getBoundingClientRect().width, "
                                  "i.closest(\"[data-testid='stColumn']\").getBoundingClientRect().width]")
    assert widths[0] >= 0.95 * widths[1] and widths[0] > 200, widths


def test_the_matrix_grows_with_the_window(browser, base):
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    try:
        page.goto(f"{base}/confusion?run=evaluated")
        settle(page)
        box = cell_box(page)
        assert box["width"] >= 600 and abs(box["width"] - box["height"]) < 1, box
        assert box["y"] + box["height"] <= 1080  # the whole matrix on the first screen
        assert illegible_labels(page) == [] and plotly_labels_outside(page) == []
    finally:
        context.close()


def test_the_longest_layer_names_leave_every_column_of_the_layer_table_whole(projector, start_app):
    projector.goto(f"{start_app(ROOT / 'artifacts' / 'runs')}/architecture?run=densenet201_fer")
    settle(projector)
    table = projector.locator("[data-testid='stDataFrame']").filter(visible=True).first
    table.scroll_into_view_if_needed()
    assert tables_cut(projector) == []  # densenet201_fer's 39-character names cut the last header at 1280


def test_the_exported_reports_labels_are_whole_when_the_dashboard_builds_it(projector, runs, tmp_path,
                                                                           monkeypatch):
    import plotly.io as pio
    import streamlit  # noqa: F401  (it registers its template)

    from fer_models.teaching.report import build_report

    monkeypatch.setattr(pio.templates, "default", "streamlit")  # as in the dashboard's process
    report = tmp_path / "report.html"
    report.write_text(build_report(runs / "evaluated", faces_per_class=1, filters=1))
    projector.goto(report.as_uri())
    projector.wait_for_selector("#confusion_matrix .xtick text, .js-plotly-plot .xtick text", timeout=30_000)
    assert plotly_labels_outside(projector) == []


def test_every_class_and_the_seven_methods_start_on_the_first_screen_and_two_runs_both_show(projector, base):
    """Their grids sat under the face picker, below a 720-px screen: now the first row of maps is seen at once.
    Compared, the second run's grid sat under the controls: now a row of seven maps per run, both rows and their
    scales on the first screen."""
    projector.goto(f"{base}/saliency?run=evaluated")
    settle(projector)
    for method in ("Integrated Gradients", "Guided Grad-CAM"):  # the longest names, whole in their box
        projector.locator("[data-testid='stSelectbox']").filter(has_text="Method").locator("input").click()
        projector.keyboard.type(method)
        projector.keyboard.press("Enter")
        settle(projector)
        assert choices_cut(projector) == []
    views = (("Every class", r"· model \d+%$"), ("All seven methods", "^(Gradient saliency|SmoothGrad|Integrated "
             "Gradients|Guided Backprop|Grad-\u2060?CAM|Guided Grad-\u2060?CAM|Occlusion)$"))
    for view, caption in views:
        projector.locator("[data-testid='stButtonGroup']").get_by_text(view, exact=True).click()
        settle(projector)
        projector.get_by_role("heading", name="Saliency", exact=True).scroll_into_view_if_needed()  # as a page opens
        shown = projector.locator("[data-testid='stImage']").filter(has_text=re.compile(caption)).first
        shown.wait_for(timeout=60_000)
        box = shown.locator("img").bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= 720, f"{view}: the first map ends at {box}"
    projector.locator("[data-testid='stSelectbox']").filter(has_text="Compare with another run").locator(
        "input").click()
    projector.keyboard.type("other")
    projector.keyboard.press("Enter")
    settle(projector)
    for view, caption in reversed(views):  # all seven still picked: a click on it would unpick it
        if view == "Every class":
            projector.locator("[data-testid='stButtonGroup']").get_by_text(view, exact=True).click()
            settle(projector)
        projector.get_by_role("heading", name="Saliency", exact=True).scroll_into_view_if_needed()
        for name in ("evaluated", "other"):
            assert projector.get_by_role("heading").filter(has_text=f"{name}: reads").is_visible()
        maps = projector.locator("[data-testid='stImage']").filter(has_text=re.compile(caption))
        scales = projector.locator("[data-testid='stImage']").filter(has_text=re.compile("scale|signed"))
        assert maps.count() == 14 and scales.count() == 2, (view, maps.count(), scales.count())
        for shown in maps.all() + scales.all():
            box = shown.locator("img").bounding_box()
            assert box["y"] >= 0 and box["y"] + box["height"] <= 720 and box["x"] + box["width"] <= 1280, (view, box)
        assert names_broken(projector) == []
        # the switches on the same screen: under two rows of maps, a switch meant scrolling down and back up
        for switch in (projector.locator("[data-testid='stButtonGroup']").first,
                       projector.locator("[data-testid='stSelectbox']").filter(has_text="Compare with another run")):
            box = switch.bounding_box()
            assert box["y"] >= 0 and box["y"] + box["height"] <= 720, (view, box)
        if view == "All seven methods":  # one pair of scales for both rows, said so: beside one row each, they
            assert projector.get_by_text("Both runs:", exact=True).is_visible()  # read as that run's kind of map
