"""The explain pages in Chromium: a real upload, and the confusion page's link to a face."""
import re

from PIL import Image
from streamlit_page import settle, take_camera_photo

from helpers import face_photo


def test_upload_a_photo_see_the_face_the_prediction_and_a_map(page, module_app, tmp_path):
    photo = tmp_path / "me.jpg"
    Image.fromarray(face_photo()).save(photo, "JPEG", quality=92)
    base = module_app[0]
    page.goto(f"{base}/saliency?run=small")
    settle(page)
    page.locator("[data-testid='stRadio']").get_by_text("Upload", exact=True).click()
    settle(page)
    page.locator("input[type='file']").set_input_files(str(photo))
    page.wait_for_selector("text=1 face found", timeout=60_000)
    settle(page)
    assert page.get_by_text("small reads").is_visible() or page.locator("text=reads").count() >= 1
    captions = page.locator("[data-testid='stImageCaption']").all_inner_texts()
    assert any(c.startswith("me.jpg: 640×480") for c in captions)
    assert any("What the model sees" in c for c in captions)
    assert any("over the face" in c for c in captions) and any("the map alone" in c for c in captions)
    assert page.locator(".js-plotly-plot").count() == 1  # the probabilities
    page.screenshot(path=str(tmp_path / "saliency-upload.png"), full_page=True)


def test_a_face_in_the_confusion_matrix_opens_in_saliency(page, module_app, tmp_path):
    base, runs = module_app
    run = runs / "evaluated"
    page.goto(f"{base}/confusion?run=evaluated")
    settle(page)
    page.wait_for_selector(".js-plotly-plot .scatterlayer .point", timeout=30_000)
    import pandas as pd
    predictions = pd.read_csv(run / "eval" / "PublicTest" / "predictions.csv", dtype={"id": str})
    true, pred = predictions.groupby(["true", "pred"]).size().idxmax()
    page.locator(".js-plotly-plot .scatterlayer .point").nth(true * 7 + pred).click(force=True)
    page.wait_for_selector("[data-testid='stImage']", timeout=30_000)
    settle(page)
    captions = page.locator("[data-testid='stCaptionContainer']")
    first = captions.filter(has_text=re.compile(r"^id \S+")).first.inner_text()
    face_id = re.search(r"id (\S+)", first).group(1)
    page.get_by_role("link", name="Explain").first.click()
    page.wait_for_url("**/saliency?**", timeout=30_000)
    settle(page)
    assert f"face={face_id}" in page.url and "run=evaluated" in page.url
    assert page.get_by_role("heading", name="Saliency").is_visible()
    assert page.get_by_role("textbox", name=re.compile("^Face id")).input_value() == face_id
    assert page.locator("text=the dataset says").count() == 1
    page.screenshot(path=str(tmp_path / "saliency-linked.png"), full_page=True)
    page.go_back()  # one press: the cell and its faces again
    settle(page)
    assert "/confusion?" in page.url and "cell=" in page.url
    page.get_by_role("link", name="Explain").first.wait_for(timeout=30_000)


def test_a_camera_shot_is_explained(face_camera_app, tmp_path):
    page = face_camera_app("saliency")
    take_camera_photo(page, "Camera", "1 face found")
    captions = page.locator("[data-testid='stImageCaption']").all_inner_texts()
    assert any("What the model sees" in c for c in captions)
    assert any("the map alone" in c for c in captions)


def test_a_mistake_opens_in_saliency_with_the_same_face(page, module_app):
    import pandas as pd

    base, runs = module_app
    run = runs / "evaluated"
    predictions = pd.read_csv(run / "eval" / "PublicTest" / "predictions.csv", dtype={"id": str})
    true = int(predictions.loc[predictions["true"] != predictions["pred"], "true"].mode()[0])
    from fer_models.core.constants import EMOTIONS
    page.goto(f"{base}/mistakes?run=evaluated&true={EMOTIONS[true]}")
    settle(page)
    page.wait_for_selector("[data-testid='stImage']", timeout=30_000)
    first = page.locator("[data-testid='stCaptionContainer']").filter(has_text="· label").first.inner_text()
    face_id = re.search(r"id (\S+)", first).group(1)
    assert f"label {EMOTIONS[true]}" in first
    page.get_by_role("link", name="Explain").first.click()
    page.wait_for_url("**/saliency?**", timeout=30_000)
    settle(page)
    assert f"face={face_id}" in page.url
    assert page.get_by_role("textbox", name=re.compile("^Face id")).input_value() == face_id


def test_a_new_filters_layer_says_how_far_it_is_then_shows_its_patterns(page, module_app):
    """A layer with nothing precomputed: the ranking and the synthesis each move a bar with the time left, every
    filter's row is there at once (no pattern of the layer before under this one's name), patterns fill in."""
    page.goto(f"{module_app[0]}/filters?run=small")
    settle(page)
    page.evaluate("""() => { window.seen = new Set(); new MutationObserver(() => document.querySelectorAll(
        "[data-testid='stProgress'], [data-testid='stCaptionContainer']").forEach(e => window.seen.add(e.innerText)))
        .observe(document.body, {subtree: true, childList: true, characterData: true}); }""")
    # three filters, not eight: one synthesised first, then two (half the work of the default eight)
    page.locator("[data-testid='stSlider']").filter(has_text="Filters").get_by_role("slider").focus()
    page.keyboard.press("Home")
    settle(page)
    for _ in range(2):
        page.keyboard.press("ArrowRight")
        settle(page)
    page.locator("[data-testid='stSelectbox']").filter(has_text="Layer").click()
    page.locator("[role='option']").filter(has_text="block2.conv").click()
    settle(page)
    seen = page.evaluate("[...window.seen]")
    assert any(re.search(r"Ranking the 3,589 PublicTest faces .*block2.conv.*: [\d,]+ of 3,589", s) for s in seen)
    assert any(s.startswith("Synthesising pattern 1 of 3: ascent step") for s in seen), seen
    assert any(s.startswith("Synthesising patterns 2–3 of 3") for s in seen)
    assert any(re.search(r"about \d+ s left", s) for s in seen)
    assert any("its pattern is being synthesised" in s for s in seen)
    captions = page.locator("[data-testid='stImageCaption']").all_inner_texts()
    assert sum(re.fullmatch(r"filter #\d+", c) is not None for c in captions) == 3
    assert page.get_by_text("is being synthesised").count() == 0
