"""Human or model? The class answers for a face, then the reveal: the dataset's label, the ten FER+ annotators'
votes and the model's probabilities, with a running score of the class, the model and the label."""
import numpy as np
import streamlit as st

from app_pages._confusion_view import cached_votes, load_evaluation
from app_pages._dataset import load_split
from app_pages._face_card import votes_bar, votes_legend
from app_pages._shared import chart, md, require_evaluation, selected_run, stop_page
from fer_models.core.constants import EMOTIONS
from fer_models.datasets.bundle import BUNDLED_PUBLICTEST
from fer_models.datasets.facedata import DataError
from fer_models.explain.pictures import enlarge
from fer_models.runs.registry import faces_source
from fer_models.teaching.figures import probability_figure
from fer_models.teaching.quiz import MAX_FACES, WAYS, model_beat_label, quiz_faces, score

SPLIT = "PublicTest"

st.title("Human or model?")


def faces_of(metrics):
    """(images, {id: row}) of the evaluated faces: the evaluation's own data when on this machine, else the bundle."""
    source = faces_source(metrics, SPLIT) or BUNDLED_PUBLICTEST
    images, _, _, index = load_split(source, SPLIT)
    return images, index


def setup(run, predictions, votes) -> None:
    st.caption(f"The class sees a {SPLIT} face and agrees on an expression; then the dataset's label, the ten FER+ "
               f"annotators' votes and {md(run.name)}'s probabilities are revealed. Each answer scores a point when "
               "it matches the annotators' most common answer (the label, where there are no votes).")
    a, b = st.columns([2, 1])
    way = a.radio("Faces", list(WAYS), format_func=WAYS.get, key="quiz_way")
    count = b.slider("How many", 1, MAX_FACES, 8, key="quiz_count")
    if st.button("Start the quiz", type="primary", icon=":material/play_arrow:", shortcut="Enter"):
        seed = int(np.random.default_rng().integers(1 << 31))
        try:
            faces = quiz_faces(predictions, votes, way, count, seed)
        except ValueError as err:
            st.error(f"{md(err)}.")
            return
        st.session_state["quiz"] = {"run": run.name, "faces": faces, "at": 0, "answers": {}, "shown": set()}
        st.rerun()


def scoreboard(quiz) -> None:
    points = score(quiz["faces"], quiz["answers"])
    n = points["faces"]
    a, b, c = st.columns(3)
    a.metric("Class", f"{points['class']} / {n}")
    b.metric("Model", f"{points['model']} / {n}")
    c.metric("Label", f"{points['label']} / {n}",
             help="FER2013's own label, scored against the annotators too: it is sometimes the error.")
    if n and points["judged by annotators"] < n:
        k = n - points["judged by annotators"]
        st.caption(f"{k} of these faces {'has' if k == 1 else 'have'} no single most common FER+ answer and "
                   f"{'was' if k == 1 else 'were'} scored against the label.")


def reveal(face, answer) -> None:
    crowd = face.crowd
    judge = EMOTIONS[face.judge()]
    st.markdown(f"Dataset label: **{EMOTIONS[face.label]}** · model: **{EMOTIONS[face.model]}** "
                f"({face.probs[face.model]:.0%}) · class: **{EMOTIONS[answer] if answer is not None else '—'}**")
    if face.votes is not None:
        st.html(votes_bar(face.votes) + votes_legend())  # the colours' key: the bar alone named no class
    st.markdown(f"Scored against **{judge}**, " + ("the annotators' most common answer." if crowd is not None
                                                   else "the label (no single most common FER+ answer)."))
    figure = probability_figure(face.probs, face.label)
    figure.update_layout(height=200)  # with a two-line verdict above, 220 put "Next face" 3 px below 720
    chart(figure, width="stretch", config={"displayModeBar": False}, key=f"quiz_probs_{face.id}")


def question(quiz, images, index) -> None:
    at, faces = quiz["at"], quiz["faces"]
    face = faces[at]
    picture, side = st.columns([2, 3], gap="large")
    if face.id in index:
        picture.image(enlarge(images[index[face.id], 0], 336), width=336)
    else:
        picture.warning(f"Face {md(face.id)} is not in the faces on this machine.")
    with side:
        st.markdown(f"**Face {at + 1} of {len(faces)}** ({SPLIT} {md(face.id)}). What does the class say?")
        answer = st.pills("The class's answer", range(len(EMOTIONS)), key=f"quiz_answer_{face.id}",
                                      format_func=lambda i: EMOTIONS[i], label_visibility="collapsed")
        shown = face.id in quiz["shown"]
        if not shown:
            if st.button("Reveal", type="primary", icon=":material/visibility:", disabled=answer is None,
                         shortcut="Space", help="Choose the class's answer first"):
                quiz["answers"][face.id] = int(answer)
                quiz["shown"].add(face.id)
                st.rerun()
        else:
            reveal(face, quiz["answers"].get(face.id))
            last = at == len(faces) - 1
            if st.button("See the result" if last else "Next face", type="primary", shortcut="Right"):
                quiz["at"] += 1
                st.rerun()
    with picture:  # under the face: the reveal fills the other column to the fold
        scoreboard(quiz)


def result(quiz, images, index) -> None:
    scoreboard(quiz)
    beaten = model_beat_label(quiz["faces"])
    if beaten:
        st.subheader(f"Where the model beat the label ({len(beaten)})")
        st.caption("The annotators' most common answer is the model's, not the dataset's label.")
        for column, face in zip(st.columns(6), beaten[:6]):
            if face.id in index:
                column.image(enlarge(images[index[face.id], 0], 144), width=144,
                             caption=f"label {EMOTIONS[face.label]}; model and annotators {EMOTIONS[face.model]}")
    else:
        st.caption("On none of these faces did the annotators side with the model against the label.")
    if st.button("New quiz", icon=":material/replay:"):
        del st.session_state["quiz"]
        st.rerun()


run = selected_run()
if run is not None:
    require_evaluation(run)
    if SPLIT not in run.evaluations:
        st.info(f"Run {md(run.name)} has no {SPLIT} evaluation: evaluate it (fer-studio evaluate) to quiz on it.")
        stop_page()
    loaded = load_evaluation(run, SPLIT)
    if loaded is None or loaded[2] is None:
        stop_page()
    metrics, predictions, _ = loaded
    votes, _ = cached_votes(metrics.get("data"), SPLIT)
    quiz = st.session_state.get("quiz")
    if quiz is not None and quiz["run"] != run.name:  # another run picked: its own quiz
        quiz = None
        del st.session_state["quiz"]
    if quiz is None:
        setup(run, predictions, votes)
        stop_page()
    try:
        images, index = faces_of(metrics)
    except DataError as err:
        st.error(f"Could not read the faces: {md(err)}")
        stop_page()
    if quiz["at"] < len(quiz["faces"]):
        question(quiz, images, index)
    else:
        result(quiz, images, index)
