"""The lesson walked in Chromium at a projector's 1280×720 on every shipped run, with the keys a presenter uses:
each step has its title and its figure, no error, and nothing it needs below the fold or off the right edge. Then
a quiz question answered and revealed. With FER_STUDIO_SCREENSHOTS=DIR the README's pictures are saved there."""
import os
import re
import shutil

import pytest
from streamlit_page import settle

from fer_models.teaching.lesson import STEPS
from helpers import ROOT

RUNS = ("cnn3", "resnet10_fer", "densenet201_fer")
WIDTH, HEIGHT = 1280, 720
FIGURES = ("[data-testid='stPlotlyChart']", "[data-testid='stImage']", "[data-testid='stHtml']")
KEYS = {1: "ArrowRight", 2: "PageDown", 3: "ArrowRight", 4: "PageDown", 5: "ArrowRight"}  # Next, as key or clicker


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A server over a copy of the shipped runs: the walk only reads them, a copy makes sure."""
    from conftest import serve, stop

    runs = tmp_path_factory.mktemp("shipped")
    for name in RUNS:
        shutil.copytree(ROOT / "artifacts" / "runs" / name, runs / name)
    proc, base = serve(runs)
    yield base
    stop(proc)


@pytest.fixture
def projector(browser):
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
    yield context.new_page()
    context.close()


def under_the_bar(page) -> list[str]:
    """What the fixed Back/Next bar and step numbers hide of the step: lines of text (in HTML and in charts),
    pictures and chart plotting areas of the main column that they overlap; an element's empty margin is no loss."""
    return page.evaluate("""() => [".st-key-lesson_nav", ".st-key-lesson_steps"].flatMap(fixed => {
        const bar = document.querySelector(fixed).getBoundingClientRect();
        const main = document.querySelector("[data-testid='stMainBlockContainer']");
        const hit = r => r.width && r.height && r.left < bar.right - 1 && r.right > bar.left + 1 &&
                         r.top < bar.bottom - 1 && r.bottom > bar.top + 1;
        const out = [];
        const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
        for (let t = walker.nextNode(); t; t = walker.nextNode()) {
            if (!t.textContent.trim() ||
                t.parentElement.closest(".st-key-lesson_nav, .st-key-lesson_steps, .st-key-lesson_clicker"))
                continue;
            const range = document.createRange();
            range.selectNodeContents(t);
            if ([...range.getClientRects()].some(hit)) out.push(t.textContent.trim().slice(0, 40));
        }
        for (const e of main.querySelectorAll("img, canvas, .nsewdrag"))
            if (!e.closest(".st-key-lesson_nav") && hit(e.getBoundingClientRect())) out.push(e.tagName);
        return out;
    })""")


def outside(page) -> list[str]:
    """Visible elements of the main column whose box leaves the viewport (below the fold or off the right), as
    clipped by any box they scroll inside."""
    return page.evaluate("""([w, h]) => {
        const main = document.querySelector("[data-testid='stMainBlockContainer']");
        const out = [];
        for (const e of main.querySelectorAll("[data-testid='stElementContainer']")) {
            const r = e.getBoundingClientRect();
            if (!r.width || !r.height) continue;  // hidden: the clicker's buttons
            let bottom = r.bottom, right = r.right;
            for (let a = e.parentElement; a && a !== main; a = a.parentElement) {
                const style = getComputedStyle(a);
                if (style.overflowY !== 'visible') bottom = Math.min(bottom, a.getBoundingClientRect().bottom);
                if (style.overflowX !== 'visible') right = Math.min(right, a.getBoundingClientRect().right);
            }
            if (bottom > h + 1 || right > w + 1) out.push(`${e.innerText.slice(0, 40)} @ ${Math.round(bottom)}`);
        }
        return out;
    }""", [WIDTH, HEIGHT])


def save(page, name: str) -> None:
    folder = os.environ.get("FER_STUDIO_SCREENSHOTS")
    if folder:
        page.evaluate("document.activeElement && document.activeElement.blur()")  # no focus ring in the picture
        page.mouse.move(0, HEIGHT - 1)
        page.screenshot(path=os.path.join(folder, name))


@pytest.mark.parametrize("run", RUNS)
def test_the_lesson_fits_a_projector_step_by_step(projector, shipped, run):
    page = projector
    page.goto(f"{shipped}/lesson?run={run}&lesson=layers")
    for i, step in enumerate(STEPS, 1):
        heading = page.get_by_role("heading", name=f"{i}/6 · {step.question}")
        heading.wait_for(timeout=120_000)
        settle(page)
        main = page.locator("[data-testid='stMainBlockContainer']")
        assert sum(main.locator(f).count() for f in FIGURES) > 0, f"{run} step {i}: no figure"
        assert main.locator("[data-testid='stAlertContentError']").count() == 0, f"{run} step {i}"
        assert outside(page) == [], f"{run} step {i} ({step.slug})"
        assert under_the_bar(page) == [], f"{run} step {i} ({step.slug}): the Back/Next bar covers them"
        assert f"lesson={step.slug}" in page.url
        if run == "densenet201_fer" and step.slug in ("confusion", "math"):
            save(page, f"lesson-{step.slug}.png")
        if i < len(STEPS):
            heading.click()  # the keys go to the page, not to a widget that had focus
            page.keyboard.press(KEYS[i])
    page.keyboard.press("ArrowLeft")
    page.get_by_role("heading", name=f"5/6 · {STEPS[4].question}").wait_for(timeout=60_000)


def test_presenter_type_is_large_and_still_fits(projector, shipped):
    page = projector
    page.goto(f"{shipped}/lesson?run=resnet10_fer&lesson=training&presenter=1")
    page.get_by_role("heading", name=f"2/6 · {STEPS[1].question}").wait_for(timeout=120_000)
    settle(page)
    body = page.locator("[data-testid='stMainBlockContainer'] [data-testid='stMarkdown'] p").first
    assert float(body.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 20
    ticks = page.locator(".js-plotly-plot .xtick text").first
    assert float(ticks.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 16
    # a few epochs marked a panel, not one every few epochs piled up in half a projector's width
    assert page.locator(".js-plotly-plot .xaxislayer-above").first.locator(".xtick").count() <= 6
    legend = page.locator(".js-plotly-plot .legendtext").first.text_content()
    assert legend.startswith("validation: best"), legend
    assert outside(page) == [] and empty_scroll(page) <= 40
    # the longest story in large type: Back and Next covered its "Compute one cell" link, the link's layer name
    # ran off the column
    page.goto(f"{shipped}/lesson?run=densenet201_fer&lesson=layers&presenter=1")
    page.get_by_role("heading", name=f"1/6 · {STEPS[0].question}").wait_for(timeout=120_000)
    settle(page)
    link = page.get_by_role("link", name="Compute one of its cells by hand")
    assert link.evaluate("e => [e, ...e.querySelectorAll('*')].every(d => d.scrollWidth <= d.clientWidth + 1)")
    assert outside(page) == [] and under_the_bar(page) == []
    # the diagram, taller than its box, shows its scrollbar unhovered: Streamlit's was transparent until hovered
    chain = page.locator(".st-key-lesson_chain")
    assert chain.evaluate("e => e.scrollHeight > e.clientHeight && e.offsetWidth - e.clientWidth >= 8")
    box = chain.bounding_box()
    strip = page.screenshot(clip={"x": box["x"] + box["width"] - 12, "y": box["y"], "width": 12, "height": 200})
    import io

    import numpy as np
    from PIL import Image
    pixels = np.asarray(Image.open(io.BytesIO(strip)).convert("RGB")).reshape(-1, 3).astype(int)
    assert (np.abs(pixels - (160, 160, 168)).sum(1) < 24).mean() > 0.3  # its thumb, in the page's grey
    # the neuron step's numbers were 11 px in large type
    page.goto(f"{shipped}/lesson?run=resnet10_fer&lesson=math&presenter=1")
    page.get_by_role("heading", name=f"6/6 · {STEPS[5].question}").wait_for(timeout=120_000)
    settle(page)
    cells = page.locator("[data-testid='stMainBlockContainer'] td")
    assert cells.count() == 27
    assert cells.evaluate_all("ts => ts.every(t => parseFloat(getComputedStyle(t).fontSize) >= 16 && "
                              "t.scrollWidth <= t.clientWidth)")
    titles = page.get_by_text(re.compile("^(input window|× kernel|= products)$"))  # were 14 px
    assert titles.count() == 3
    assert titles.evaluate_all("ts => ts.every(t => parseFloat(getComputedStyle(t).fontSize) >= 16)")
    assert outside(page) == [] and empty_scroll(page) <= 40


def empty_scroll(page) -> float:
    """How far the page scrolls: a step that fits scrolled 120-190 px into empty space (the fixed bars' wrappers'
    gaps and Streamlit's 10rem under the last element)."""
    return page.locator("[data-testid='stMain']").evaluate("m => m.scrollHeight - m.clientHeight")


def test_a_quiz_question_in_the_browser(projector, shipped):
    page = projector
    page.goto(f"{shipped}/quiz?run=resnet10_fer")
    page.get_by_role("button", name="Start the quiz").click()
    page.get_by_text("Face 1 of 8").wait_for(timeout=60_000)
    settle(page)
    page.get_by_role("radio", name="happy", exact=True).click()
    settle(page)
    page.get_by_role("button", name="Reveal").click()
    page.get_by_text("Dataset label:").wait_for(timeout=60_000)
    settle(page)
    assert page.locator("[data-testid='stMetricValue']").first.inner_text().strip().endswith("/ 1")
    assert outside(page) == []
    save(page, "quiz-reveal.png")


def test_presenter_type_on_the_confusion_step_keeps_names_whole(projector, shipped):
    """At 18 px the level class names ran into each other ("angrydisgust") and a link was cut at "side w"."""
    page = projector
    page.goto(f"{shipped}/lesson?run=densenet201_fer&lesson=confusion&presenter=1")
    page.get_by_role("heading", name=f"3/6 · {STEPS[2].question}").wait_for(timeout=120_000)
    settle(page)
    slants = page.locator(".js-plotly-plot .xtick text").evaluate_all(
        "es => es.map(e => e.getAttribute('transform') || '')")
    assert len(slants) == 7 and all("rotate(-45" in t for t in slants), slants
    # the help promises 16-px ticks: the names and the cells' figures stayed at the figure's own 14 px
    sizes = page.locator(".js-plotly-plot .xtick text, .js-plotly-plot .ytick text, "
                         ".js-plotly-plot .annotation-text").evaluate_all(
        "es => es.map(e => parseFloat(getComputedStyle(e).fontSize))")
    assert len(sizes) == 14 + 49 and min(sizes) >= 16, sizes
    # the box no taller than the square matrix needs: a window-tall one left ~120 px of empty figure under it
    heat = page.locator(".js-plotly-plot .hm image").bounding_box()
    box = page.locator(".st-key-confusion_box").bounding_box()
    assert box["y"] + box["height"] - (heat["y"] + heat["height"]) <= 40, (heat, box)
    cut = page.locator("[data-testid='stPageLink'] p").evaluate_all(
        "es => es.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.innerText)")
    assert cut == [], cut
