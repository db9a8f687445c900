"""Mistakes: every face the selected run gets wrong, per class, beside what ten FER+ annotators said about it."""
import pandas as pd
import streamlit as st

from app_pages._dataset import cached_votes, load_split
from app_pages._face_card import card_cells, face_card, votes_legend
from app_pages._shared import (
    evaluation_from_url,
    follow_url,
    md,
    require_evaluation,
    selected_run,
    split_role_note,
    stop_page,
    to_url,
    url_value,
)
from fer_models.core.constants import EMOTIONS
from fer_models.datasets.facedata import DataError
from fer_models.evaluation.mistakes import (
    MAJORITY,
    MAJORITY_MODEL,
    MOST_COMMON_MODEL,
    NONE,
    ORDERS,
    VERDICTS,
    compare,
    covering,
    in_words,
    mistake_table,
    select,
    summary,
)
from fer_models.runs.folder import RunProblem
from fer_models.runs.registry import faces_source, read_evaluation

PER_PAGE = 12
ALL = "all"

st.title("Mistakes")
st.caption("Every face the run gets wrong, the model's most confident mistakes first, beside the votes of the ten "
           "FER+ annotators who relabelled FER2013: where their most common answer is the model's class, the "
           "dataset's single label is the likely error.")


@st.cache_data(show_spinner="Reading the evaluation…", max_entries=16)
def cached_evaluation(run_path: str, split: str):
    return read_evaluation(run_path, split)


def from_url(key: str, options: list, default):
    """A choice kept in the URL (so that Back from Saliency and a refresh keep it); unknown values ignored."""
    value = url_value(key)
    return options.index(value) if value in options else options.index(default)


def evaluation_of(run, split):
    try:
        return cached_evaluation(str(run.path), split)
    except (FileNotFoundError, RunProblem) as err:
        st.error(f"The {md(split)} evaluation of {md(run.name)} cannot be read: {md(err)}. Evaluate the run again to "
                 "rewrite it.")
        stop_page()


def evaluation_ui(run):
    """(split, metrics, predictions, the run to compare with or None), the run's labelled evaluation picked."""
    pick, other = st.columns(2)
    splits = run.evaluations
    split = pick.selectbox("Evaluation", splits, index=evaluation_from_url(run))
    metrics, predictions, confusion = evaluation_of(run, split)
    if confusion is None:
        st.info(f"Split {md(split)} has no labels, so no face can be called a mistake.")
        stop_page()
    peers = [r.name for r in st.session_state.get("runs", []) if r.name != run.name and split in r.evaluations]
    second = other.selectbox(f"Compare with another run's {md(split)} mistakes", [None, *peers],
                             index=from_url("with", [None, *peers], None),
                             format_func=lambda n: "—" if n is None else n)
    return split, metrics, predictions, second


def summary_ui(table, shown, filtered: bool, source: str) -> None:
    """Per class, the faces listed below (those the filters keep): `table` is summary() of them."""
    title = (f"Per class: the {len(shown):,} faces the choices below keep, and the annotators' most common answer "
             "on them") if filtered else "Per class: the mistakes and the annotators' most common answer on them"
    # keyed: its title counts the faces the filters keep, and with the title as its identity a filter change
    # folded it shut while the reader was looking at it
    if filtered:  # a class none of the kept faces is in read "467 faces, 0 mistakes", as if it were perfect
        table = table[(table["mistakes"] > 0) | (table["class"] == "all")].copy()
        # the total's faces, those of the classes kept: with fear chosen it read "3,589 faces, 269 mistakes"
        total = table["class"] == "all"
        table.loc[total, "faces"] = table.loc[~total, "faces"].sum()
    with st.expander(title, expanded=False, key="mistakes_per_class"):
        if filtered:
            st.caption("Only the classes of the faces the choices keep; faces: all of a class's faces (all: of "
                       "those classes).")
        column = st.column_config  # short headers, each one's meaning on hover: the long ones ran off at 1280 px
        shares = ["share with the model", "share with a majority"]
        # whole percents (two decimals took a column), and "—" where no mistake had votes (NaN, the one value unequal
        # to itself): a number column drew "None"
        table = table.assign(**{k: table[k].map(lambda v: "—" if v != v else f"{v:.0%}") for k in shares})
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            "with votes": column.NumberColumn("voted", help="Mistakes with FER+ votes"),
            MOST_COMMON_MODEL: column.NumberColumn("model", help="The annotators' most common answer is the "
                                                   "model's class"),
            "the label": column.NumberColumn("label", help="... is the dataset's label"),
            "a third class": column.NumberColumn("other", help="... is a third class"),
            "no single class": column.NumberColumn("none", help="No single most common answer (a tie, or more "
                                                   "'not a face' votes)"),
            MAJORITY_MODEL: column.NumberColumn("6+ model", help=f"{MAJORITY} chose the model's class"),
            "share with the model": column.TextColumn("% model", help="model, of the voted mistakes"),
            "share with a majority": column.TextColumn("% 6+ model", help="6+ model, of the voted mistakes")})
        st.caption("model, label, other, none: what the annotators' most common answer is on the mistakes, the "
                   "model's class, the dataset's label, a third class or no single class; 6+ model: a majority "
                   "chose the model's class.")
        st.caption(f"The most common answer is the class with the most of the ten votes (it may be 4 of 10); "
                   f"a majority is {MAJORITY}. Votes: {md(source)}.")


def filters_ui() -> dict:
    """The chosen true class, predicted class, verdict, majority filter and order, as select()'s arguments."""
    a, b, c, d = st.columns([1, 1, 1.4, 1])
    classes = [ALL, *EMOTIONS]
    true = a.selectbox("True class", classes, index=from_url("true", classes, ALL))
    pred = b.selectbox("Predicted class", classes, index=from_url("pred", classes, ALL))
    verdict_keys = [ALL, *VERDICTS]
    verdict = c.selectbox("The annotators' most common answer", verdict_keys,
                          index=from_url("votes", verdict_keys, ALL),
                          format_func=lambda v: "any" if v == ALL else VERDICTS[v],
                          help="The class that got the most of the ten FER+ annotators' votes: the model's class, "
                               "the dataset's label, a third class, or no single class (a tie, or more 'not a "
                               "face' votes). A most common answer may be 4 votes of 10: the switch below keeps "
                               "only faces where a majority agrees.")
    order = d.selectbox("Order", list(ORDERS), index=from_url("order", list(ORDERS), ORDERS[0]))
    # the rule goes in the tooltip: in a quarter of a projector's width the label was cut to "Only a majo…"
    majority = c.toggle("Majority only", value=url_value("majority") == "1",
                        help=f"Only faces where a majority of the ten annotators ({MAJORITY}) chose the same class")
    to_url(true=true, pred=pred, votes=verdict, order=order, majority=int(majority))
    return dict(true=None if true == ALL else EMOTIONS.index(true),
                pred=None if pred == ALL else EMOTIONS.index(pred),
                verdict=None if verdict == ALL else verdict, order=order, majority=majority)


def compare_ui(run, split, predictions, second, shown, wanted, votes):
    """With a second run: which faces (wrong for both, only one), each set counted under the filters, and the
    second run's predictions by face id."""
    _, second_predictions, _ = evaluation_of(next(r for r in st.session_state["runs"] if r.name == second), split)
    groups = compare(predictions, second_predictions)
    # mistakes of the second run alone are filtered on its own table: its prediction, its confidences
    theirs = select(mistake_table(second_predictions, votes), **wanted)
    kept = {"both": shown, "only first": shown, "only second": theirs}
    count = {k: int(kept[k]["id"].isin(groups[k]).sum()) for k in groups}
    names = {"both": f"wrong for both ({count['both']:,})",
             "only first": f"only {md(run.name)} gets wrong ({count['only first']:,})",
             "only second": f"only {md(second)} gets wrong ({count['only second']:,})"}
    # a radio's options are Markdown, and these carry run names
    which = st.radio("Faces", list(names), format_func=names.get, horizontal=True,
                     index=from_url("set", list(names), "both"))
    to_url(**{"with": second, "set": which})
    return kept[which][kept[which]["id"].isin(groups[which])], which, second_predictions.set_index("id")


def page_ui(shown) -> int:
    pages = max(1, (len(shown) - 1) // PER_PAGE + 1)
    asked = url_value("page", "1")  # untrusted: "²" is a digit to str.isdigit() and not to int()
    page = min(int(asked) if asked.isascii() and asked.isdigit() and len(asked) < 7 else 1, pages)
    count, paging = st.columns([3, 1], vertical_alignment="center")
    count.markdown(f"**{len(shown):,} faces**" + (f" · {pages} pages, {PER_PAGE} faces a page" if pages > 1 else ""))
    if pages > 1:
        # a key, and the URL's page only when the URL moved: with the URL's page as the box's value, each new
        # value made a new box, and every other click on + was lost
        if not 1 <= st.session_state.get("mistakes_page", 1) <= pages:  # a filter left fewer pages
            st.session_state.pop("mistakes_page")
        follow_url("mistakes_page", "page", max(page, 1))
        page = paging.number_input(f"Page (of {pages})", 1, pages, key="mistakes_page", label_visibility="collapsed",
                                   help=f"Page, of {pages}")
    else:
        page = 1
    to_url(page=page)
    return page


def cards(run, split, metrics, shown, page, second, which, second_predictions) -> None:
    whose = second if which == "only second" else run.name
    other = run.name if which == "only second" else second
    sources = faces_source(metrics, split)
    if sources is None:
        st.warning(f"The faces of {md(split)} come from {md(metrics.get('data') or 'a dataset')}, which is not on this "
                   "machine: evaluate the run on your copy to see them.")
        stop_page()
    try:
        images, _, _, index = load_split(sources, split)
    except DataError as err:
        st.error(f"Could not read the faces: {md(err)}")
        stop_page()
    if "votes_angry" in shown and shown["verdict"].ne(NONE).any():
        st.html(votes_legend())
    cells = card_cells(6)
    for row in shown.iloc[(page - 1) * PER_PAGE: page * PER_PAGE].itertuples():
        if row.id not in index:
            continue
        lines = [f"id {md(row.id)} · label **{EMOTIONS[row.true]}**",
                 f"{md(whose) if second else 'model'}: **{EMOTIONS[row.pred]}** {row.confidence:.0%}",
                 f"then {EMOTIONS[row.second]} {row.second_p:.0%}"]
        if second is not None and row.id in second_predictions.index:  # what the other run reads there, after
            theirs = int(second_predictions.loc[row.id, "pred"])  # the first run's lines, not between them
            share = pd.to_numeric(second_predictions.loc[row.id].get(f"p_{EMOTIONS[theirs]}"), errors="coerce")
            lines.append(f"{md(other)}: **{EMOTIONS[theirs]}**" + (f" {share:.0%}" if pd.notna(share) else ""))
        with next(cells):
            face_card(images[index[row.id]][0], lines, {"run": whose, "split": split, "face": row.id},
                      None if row.verdict == NONE else [getattr(row, f"votes_{e}") for e in EMOTIONS],
                      annotators=None if row.verdict == NONE else row.annotators)


run = selected_run()
if run is not None:
    require_evaluation(run)
    split, metrics, predictions, second = evaluation_ui(run)
    split_role_note(run, split)
    votes, source = covering(*cached_votes(metrics.get("data"), split), predictions["id"])
    mistakes = mistake_table(predictions, votes)
    overall = summary(mistakes, predictions)
    st.markdown(in_words(md(run.name), split, overall))
    summary_slot = st.container()  # drawn once the filters below say which faces it counts
    wanted = filters_ui()
    shown = select(mistakes, **wanted)
    which, second_predictions = None, None
    if second is not None:
        shown, which, second_predictions = compare_ui(run, split, predictions, second, shown, wanted, votes)
    else:
        to_url(**{"with": None, "set": None})
    with summary_slot:
        filtered = second is not None or any(wanted[k] not in (None, False) for k in ("true", "pred", "verdict",
                                                                                        "majority"))
        summary_ui(summary(shown, predictions) if filtered else overall, shown, filtered, source)
    to_url(split=split)
    page = page_ui(shown)
    if shown.empty:
        st.info("No mistake matches these choices.")
        stop_page()
    cards(run, split, metrics, shown, page, second, which, second_predictions)
