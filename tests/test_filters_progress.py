"""The Filters page's synthesis bar: parts weighted by their cost, so its time left is not read off the first,
dearest-per-filter part, nor off a layer's first, slow step."""
from app_pages._filters_view import synthesis_progress


class Bar:
    def __init__(self):
        self.seen = []

    def progress(self, share, text):
        self.seen.append((share, text))


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_two_parts_move_one_bar_by_their_cost_not_their_filter_count():
    bar, clock = Bar(), Clock()
    said = synthesis_progress(bar, [2, 6], clock)
    first, second = said(), said()
    first(96, 96)
    clock.now = 1.0
    assert bar.seen[-1][0] == (1 + 2 / 2) / ((1 + 2 / 2) + (1 + 6 / 2))  # a third of the work, not a quarter
    assert bar.seen[-1][1].startswith("Synthesising patterns 1–2 of 8: ascent step 96 of 96")
    second(48, 96)
    assert bar.seen[-1][0] == (2 + 4 * 0.5) / 6 and bar.seen[-1][1].startswith("Synthesising patterns 3–8 of 8")


def test_one_pattern_first_and_a_time_left_paced_after_the_layers_slow_first_step():
    bar, clock = Bar(), Clock()
    said = synthesis_progress(bar, [1, 7], clock)
    first, second = said(), said()
    clock.now = 5.0  # the first step sets the layer's convolutions up: 5 s, then 0.033 s a step, one filter
    first(1, 96)
    assert bar.seen[-1][1] == "Synthesising pattern 1 of 8: ascent step 1 of 96"  # no pace yet
    for step in range(2, 42):
        clock.now = 5.0 + (step - 1) * 0.033
        first(step, 96)
    # redrawn every 0.25 s, not every step: each redraw costs the browser, on the server's two cores
    assert [int(text.split("step ")[1].split()[0]) for _, text in bar.seen] == [1, 9, 17, 25, 33, 41]
    # 55 steps of one filter and 96 of seven (0.109 s each) are left: 12.3 s; from the start's pace, 53 s
    assert bar.seen[-1][1] == "Synthesising pattern 1 of 8: ascent step 41 of 96 · about 11 s left"
    clock.now += 55 * 0.033 + 48 * 0.109
    second(48, 96)
    assert bar.seen[-1][1] == "Synthesising patterns 2–8 of 8: ascent step 48 of 96 · about 5 s left"  # 5.2 s


def test_a_pattern_the_ascent_could_not_lift_says_what_that_means():
    """Under "what excites a filter", a mean of -0.09 beside a top face's peak of 24.75 read as the page failing."""
    from streamlit.testing.v1 import AppTest

    def page():
        from types import SimpleNamespace

        import numpy as np
        import streamlit as st

        from app_pages._filters_view import filter_row
        for channel, (reached, started) in enumerate(((-0.09, 0.01), (-0.09, -0.2), (3.2, 0.4))):
            pattern = SimpleNamespace(image=np.zeros((48, 48), np.uint8), activation=reached, start_activation=started)
            filter_row(channel, None, False, pattern, None, None, None, None, (st.empty(), st.empty(), st.empty()))

    at = AppTest.from_function(page).run()
    assert not at.exception, at.exception
    lines = [m.value for m in at.markdown]
    assert "could not raise its mean above the noise's" in lines[0], lines
    assert "could not raise its mean above zero" in lines[1] and "could not raise" not in lines[2], lines
