"""FER Studio: a dashboard over trained facial-expression models.

    streamlit run app.py

Pick a run in the sidebar; every page shows that run, and the URL (?run=NAME) reopens it.
Runs are the folders under artifacts/runs/ (or $FER_STUDIO_RUNS).

The page files live in app_pages/, not pages/: with a pages/ folder beside the entry point,
Streamlit serves a deep link (say /history?run=cnn3) that is a fresh server's first request
by running that page file alone, in its old folder-based mode, without this file's run picker.
"""
import streamlit as st

from app_pages._shared import collect_garbage, run_picker, torch_imported, warm_up, write_url

st.set_page_config(page_title="FER Studio", page_icon=":material/mood:", layout="wide")
# Streamlit's default spacing costs a projector's 720 rows a tenth of the page and pushes the sidebar's run
# details below the fold
st.html("<style>[data-testid='stMainBlockContainer'] { padding-top: 2.5rem; } "
        "[data-testid='stSidebarHeader'] { height: 2.25rem; margin-bottom: 0.25rem; } "
        "[data-testid='stSidebarUserContent'] { padding-top: 0.5rem; padding-bottom: 1rem; } "
        "[data-testid='stSidebarNavSeparator'] { padding-top: 0.25rem; } "
        "[data-testid='stSidebarNavLink'] { height: 1.5rem; min-height: 1.5rem; margin: 1px 0; } "
        # the one element above a page's title, under the 60-px header otherwise
        ".st-key-run_notice { margin-top: 1.5rem; } "
        # captions in a darker grey: the theme draws them at 60% opacity, 3.6:1 on white, under the 4.5:1 that
        # WCAG AA asks and faint on a projector; this one is 7:1 on white and 6:1 on the sidebar's grey
        "[data-testid='stCaptionContainer'], [data-testid='stImageCaption'] { color: #555867; opacity: 1; }"
        "</style>")

navigation = st.navigation({
    "Model": [
        st.Page("app_pages/architecture.py", title="Architecture", icon=":material/account_tree:"),
        # the landing page needs no torch (pandas and plotly only), which keeps the cold start short
        st.Page("app_pages/history.py", title="Training history", icon=":material/show_chart:", default=True),
        st.Page("app_pages/confusion.py", title="Confusion matrix", icon=":material/grid_on:"),
        st.Page("app_pages/mistakes.py", title="Mistakes", icon=":material/report:"),
        st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    ],
    # three sections, not five: each header costs 46 of a projector's 720 rows, and with five the sidebar's run
    # details fell below the fold
    "Explain": [
        st.Page("app_pages/saliency.py", title="Saliency", icon=":material/visibility:"),
        st.Page("app_pages/filters.py", title="Filters", icon=":material/filter_alt:"),
        st.Page("app_pages/webcam.py", title="Webcam and video", icon=":material/videocam:"),
    ],
    "Learn": [
        st.Page("app_pages/lesson.py", title="Lesson", icon=":material/co_present:"),
        st.Page("app_pages/quiz.py", title="Human or model? Quiz", icon=":material/how_to_vote:"),
        st.Page("app_pages/learn.py", title="The math", icon=":material/functions:"),
        st.Page("app_pages/convolution.py", title="One convolution", icon=":material/calculate:"),
        st.Page("app_pages/report.py", title="Report", icon=":material/description:"),
    ],
}, expanded=True)  # collapsed past ten pages, it hid the Learn pages behind "View 3 more"
try:
    run_picker()
    if navigation.url_path:  # any page but the landing one, which needs no torch
        # torch imported from two threads at once (this script and the warm-up) can deadlock in the import
        # system, which then hands one of them a half-initialised torch: every later import of it fails
        torch_imported()
    navigation.run()
finally:  # st.stop and st.rerun too: what the run put in the URL, in one browser history entry
    write_url()
warm_up(st.session_state.get("run"))
collect_garbage()
