"""Lesson: the report's six questions on the selected run, one projector screen each (?lesson=STEP links a
step), Back and Next on the arrow keys and a clicker's page keys."""
import streamlit as st

from app_pages._lesson_steps import DRAW
from app_pages._shared import follow_url, selected_run, stop_page, to_url, url_value
from fer_models.teaching.lesson import STEPS, step_index

PRESENTER_CSS = """<style>
[data-testid='stMainBlockContainer'] [data-testid='stMarkdownContainer'] p,
[data-testid='stMainBlockContainer'] [data-testid='stMarkdownContainer'] li { font-size: 20px; line-height: 1.4; }
[data-testid='stMainBlockContainer'] [data-testid='stCaptionContainer'] p { font-size: 18px; }
[data-testid='stMainBlockContainer'] label p, [data-testid='stMainBlockContainer'] [data-testid='stWidgetLabel'] p
  { font-size: 18px; }
[data-testid='stMainBlockContainer'] h1 { font-size: 2.5rem; }
[data-testid='stSidebarNav'], [data-testid='stSidebarNavSeparator'] { display: none; }
</style>"""
NAV_CSS = """<style>
.st-key-lesson_steps { position: fixed; top: 0.4rem; right: 4rem; width: 17rem; z-index: 999990; }
.st-key-lesson_nav { position: fixed; top: 0.4rem; right: 21.5rem; width: 13rem; z-index: 999990; }
.st-key-lesson_back button p, .st-key-lesson_next button p { font-size: 1.1rem; font-weight: 600; }
.st-key-lesson_clicker { display: none; }
/* a step that fits the screen does not scroll: the fixed bars' empty wrappers left a gap each in the page's flow,
   and Streamlit's 10rem under the last element scrolled every step 120-190 px into empty space */
[data-testid='stLayoutWrapper']:has(> .st-key-lesson_steps, > .st-key-lesson_nav, > .st-key-lesson_clicker)
  { position: absolute; }
[data-testid='stMainBlockContainer'] { padding-bottom: 1.5rem; }
</style>"""


def go(index: int) -> None:
    to_url(lesson=STEPS[index].slug)


def from_list() -> None:
    go(st.session_state["lesson_list"])


def from_strip() -> None:
    if st.session_state["lesson_strip"] is not None:  # a click on the step shown deselects it: stay there
        go(st.session_state["lesson_strip"])


def presenter_from_toggle() -> None:
    to_url(presenter="1" if st.session_state["lesson_presenter"] else None)


index = step_index(url_value("lesson"))
to_url(lesson=STEPS[index].slug)  # a bad or missing step reads as the first, and says so in the URL
st.session_state["lesson_list"] = index
st.sidebar.radio("Lesson", range(len(STEPS)), key="lesson_list", on_change=from_list,
                 format_func=lambda i: f"{i + 1}. {STEPS[i].question}")
follow_url("lesson_presenter", "presenter", url_value("presenter") == "1")
presenter = st.sidebar.toggle("Presenter: large type", key="lesson_presenter", on_change=presenter_from_toggle,
                              help="Body text 20 px, tick labels 16 px, readable from the back of a classroom; the "
                                   "page list is hidden to leave the sidebar to the lesson's steps.")
st.html(NAV_CSS + (PRESENTER_CSS if presenter else ""))

run = selected_run()
st.title(f"{index + 1}/{len(STEPS)} · {STEPS[index].question}")
if run is None:
    stop_page()
left, right = st.columns([1, 1] if presenter else [3, 2], gap="large")
DRAW[STEPS[index].slug](run, left, right, presenter)
# Back, the steps' numbers and Next in the header's empty band at the top right, like a pager: fixed at the bottom
# right, Back and Next covered a step's last lines at 1280×720 (densenet201_fer's "Compute one cell" link in
# presenter type), and the sidebar's list of steps starts below a 720-row screen under the page list
st.session_state["lesson_strip"] = index
st.container(key="lesson_steps").segmented_control(
    "Step", range(len(STEPS)), key="lesson_strip", on_change=from_strip, width="stretch",
    format_func=lambda i: str(i + 1), label_visibility="collapsed")
nav = st.container(key="lesson_nav")
back, ahead = nav.columns(2)
# no arrow in the labels: the keyboard shortcut's own hint draws one (it read "← Back ←")
back.button("Back", key="lesson_back", on_click=go, args=(index - 1,), disabled=index == 0, width="stretch",
            shortcut="Left")
ahead.button("Next", key="lesson_next", on_click=go, args=(index + 1,), disabled=index == len(STEPS) - 1,
             type="primary", width="stretch", shortcut="Right")
with st.container(key="lesson_clicker"):  # a presentation clicker sends Page Up and Page Down
    st.button("back", key="lesson_page_up", on_click=go, args=(max(index - 1, 0),), shortcut="PageUp")
    st.button("next", key="lesson_page_down", on_click=go, args=(min(index + 1, len(STEPS) - 1),),
              shortcut="PageDown")
