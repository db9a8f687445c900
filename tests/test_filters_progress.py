"""The Filters page's synthesis bar: parts weighted by their cost, so its time left is not read off the first,
dearest-per-filter part."""
from app_pages._filters_view import synthesis_progress


class Bar:
    def __init__(self):
        self.seen = []

    def progress(self, share, text):
        self.seen.append((share, text))


def test_two_parts_move_one_bar_by_their_cost_not_their_filter_count():
    bar = Bar()
    said = synthesis_progress(bar, [2, 6])
    first, second = said(), said()
    first(96, 96)
    assert bar.seen[-1][0] == (1 + 2 / 2) / ((1 + 2 / 2) + (1 + 6 / 2))  # a third of the work, not a quarter
    assert bar.seen[-1][1].startswith("Synthesising patterns 1–2 of 8: ascent step 96 of 96")
    second(48, 96)
    assert bar.seen[-1][0] == (2 + 4 * 0.5) / 6 and bar.seen[-1][1].startswith("Synthesising patterns 3–8 of 8")
