"""One dataset face as a card: the picture, what is known about it, the ten FER+ annotators' votes as a bar,
and a link to explain it on the Saliency page. The confusion matrix and the Mistakes page share it."""
from html import escape

import numpy as np
import streamlit as st

from fer_models.core.constants import EMOTIONS
from fer_models.explain.pictures import enlarge
from fer_models.teaching.figures import CLASS_COLOURS

OTHER_VOTES = "#d0d0d4"  # the votes for none of the seven classes: lighter than neutral's grey


def votes_bar(votes: np.ndarray, annotators: float | None = None) -> str:
    """The annotators' votes over the seven classes as a stacked bar (each class in its colour), and the leading
    classes in words, the first as "7 of 10": how many of all the annotators chose it."""
    votes = np.nan_to_num(np.asarray(votes, float))
    total = votes.sum()
    if total <= 0:
        return "<div style='font-size:14px;color:#555'>FER+: no vote for any of the seven classes</div>"
    known = annotators is not None and np.isfinite(annotators) and annotators > 0
    everyone = max(int(annotators) if known else 0, int(total))
    # out of every annotator, the votes outside the seven in grey at the end: scaled to the seven's votes, "6 of
    # 10 angry" filled 86% of the bar
    shares = [(e, v, CLASS_COLOURS[e]) for e, v in zip(EMOTIONS, votes) if v > 0] + \
        [("other", everyone - total, OTHER_VOTES)] * int(everyone > total)
    parts = "".join(f"<span title='{e}: {int(v)} of {everyone}' style='display:inline-block;height:10px;"
                    f"width:{100 * v / everyone:.1f}%;background:{colour}'></span>" for e, v, colour in shares)
    # every class with a vote, and the votes outside the seven: the top three alone left a class the bar shows
    # unnamed, and "6 of 10 angry · 1 surprise" did not say where the other three went
    order = [i for i in np.argsort(-votes, kind="stable") if votes[i] > 0]
    # no-break spaces inside "1 surprise": a card's line wraps between classes, never inside one
    leading = " · ".join((f"{int(votes[i])} of {everyone}\u00a0" if k == 0 else f"{int(votes[i])}\u00a0") + EMOTIONS[i]
                         for k, i in enumerate(order))
    elsewhere = everyone - int(total)
    other = (f" · <span title='FER+ annotators could also answer contempt, unknown or not a face'>{elsewhere}\u00a0"
             "other</span>") if elsewhere > 0 else ""
    return (f"<div style='display:flex;width:100%;border-radius:2px;overflow:hidden'>{parts}</div>"
            f"<div style='font-size:14px;color:#333;line-height:1.3'>FER+: {escape(leading)}{other}</div>")


def votes_legend() -> str:
    """The key to the vote bars' colours, once above a set of cards."""
    keys = "".join(f"<span style='white-space:nowrap;margin-right:14px'><span style='display:inline-block;width:14px;"
                   f"height:14px;vertical-align:-2px;margin-right:4px;background:{colour}'></span>{e}</span>"
                   for e, colour in [*CLASS_COLOURS.items(), ("other (contempt, unknown, not a face)", OTHER_VOTES)])
    # short: in the quiz's column a three-line key pushed "Next face" below a 720-px screen
    return (f"<div style='font-size:14px;color:#333;line-height:1.8'>Vote bars: the ten FER+ annotators' votes, one "
            f"colour per class · {keys}</div>")


def card_cells(per_row: int):
    """A column for each face card, rows of `per_row` laid out as they fill: cards flowed down `per_row` long
    columns drifted apart (a card with a longer caption pushed its column's next faces down)."""
    while True:
        yield from st.columns(per_row)


def face_card(pixels: np.ndarray, lines: list[str], explain: dict | None, votes: np.ndarray | None = None,
              annotators: float | None = None) -> None:
    """Draw in the current column; `explain` holds the Saliency page's query parameters (run, split, face)."""
    # as wide as its column, in sharp pixels: at a fixed 104 px a 1920-px window left each face in a corner of its
    # 230-px column, under a vote bar twice its width
    st.image(enlarge(pixels, 240), width="stretch")
    # the votes right under the face, so a row's bars line up whatever each caption's length
    if votes is not None and not np.isnan(np.asarray(votes, float)).all():
        st.html(votes_bar(votes, annotators))
    st.caption("  \n".join(lines))
    if explain is not None:
        st.page_link("app_pages/saliency.py", label="Explain", icon=":material/visibility:", query_params=explain)
