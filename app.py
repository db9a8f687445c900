"""FER Studio: a dashboard over trained facial-expression models.

    streamlit run app.py

Pick a run in the sidebar; every page shows that run, and the URL (?run=NAME) reopens it.
Runs are the folders under artifacts/runs/ (or $FER_STUDIO_RUNS).
"""
import streamlit as st

from pages._shared import run_picker

st.set_page_config(page_title="FER Studio", page_icon=":material/mood:", layout="wide")

navigation = st.navigation({
    "Model": [
        st.Page("pages/architecture.py", title="Architecture", icon=":material/account_tree:", default=True),
        st.Page("pages/history.py", title="Training history", icon=":material/show_chart:"),
    ],
})
run_picker()
navigation.run()
