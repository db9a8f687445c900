"""A class on one server: many sessions' threads explaining, ranking, predicting and drawing with ONE shared
model object at once get exactly what each would get alone, and no exception. (Before the fix, a capture
hook of one thread fired in another's forward pass, and pyplot's global state broke scale bars.)"""
import threading

import numpy as np
import pytest
import torch

from fer_models.evaluation.scoring import predict_proba
from fer_models.explain.attributions import METHODS, attribute_classes, face_input, gradcam_map_size, probabilities
from fer_models.explain.features import feature_maps, filter_responses, maximise_filters
from fer_models.explain.pictures import colourise, overlay, scale_bar
from fer_models.nets.models import create_model
from helpers import synthetic_faces

META = {"normalisation": {"mean": 0.5, "std": 0.25}}
ROUNDS = 4


@pytest.fixture(scope="module")
def shared():
    torch.manual_seed(0)
    model = create_model("resnet10_fer").eval()
    faces = synthetic_faces(40, seed=3)[0]
    return model, faces


def jobs(model, faces):
    """name -> a call returning arrays; every one touches the shared model (or matplotlib) as the pages do."""
    x = face_input(faces[0], META)
    layer = model.deepest_filter_layer()
    calls = {f"attribute {m}": (lambda m=m: [a.map for a in attribute_classes(model, x, m, [3, 4])])
             for m in METHODS}
    calls.update({
        "feature maps": lambda: feature_maps(model, layer, x),
        "filter responses": lambda: filter_responses(model, layer, faces[:, None], 0.5, 0.25, batch_size=16),
        "filter patterns": lambda: [v.image for v in maximise_filters(model, layer, [0, 1], META, steps=3)],
        "probabilities": lambda: probabilities(model, x),
        "predict_proba": lambda: predict_proba(model, faces[:, None], 0.5, 0.25, batch_size=8, precision="fp32"),
        "gradcam size": lambda: np.array(gradcam_map_size(model)),
        "scale bar": lambda: scale_bar(True, 0.5),
        "overlay": lambda: overlay(faces[0], faces[1].astype(float), signed=False, opacity=0.6),
        "colourise": lambda: colourise(faces[2].astype(float) - 100, signed=True),
    })
    return calls


def test_many_threads_on_one_shared_model_get_what_each_gets_alone(shared):
    model, faces = shared
    calls = jobs(model, faces)
    alone = {name: call() for name, call in calls.items()}
    failures, lock = [], threading.Lock()
    start = threading.Barrier(len(calls) * 2)

    def worker(name, call):
        start.wait()
        for _ in range(ROUNDS):
            try:
                got = call()
                same = all(np.allclose(a, b, atol=1e-4) for a, b in zip(np.atleast_1d(got) if isinstance(got, list)
                                                                        else [got], alone[name] if isinstance(
                                                                            alone[name], list) else [alone[name]]))
                if not same:
                    with lock:
                        failures.append(f"{name}: differs from the single-threaded result")
            except Exception as err:  # noqa: BLE001 - every failure is collected and reported
                with lock:
                    failures.append(f"{name}: {type(err).__name__}: {err}")

    threads = [threading.Thread(target=worker, args=item) for item in list(calls.items()) * 2]
    [t.start() for t in threads]
    [t.join(timeout=600) for t in threads]
    assert not any(t.is_alive() for t in threads)
    assert not failures, sorted(set(failures))
    assert not any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks for m in model.modules())


def test_one_shared_curves_figure_drawn_by_many_sessions_at_once_stays_as_it_was(tmp_path):
    """The Training history's curves are one figure every session draws (app_pages/history.py, curves):
    Streamlit's st.plotly_chart serialises a copy of it, so sessions drawing it at once neither change it nor
    see each other's."""
    import plotly.io
    import plotly.tools

    from fer_models.runs.registry import read_history
    from fer_models.teaching.figures import history_figure, legible
    from helpers import make_run

    make_run(tmp_path, "a", {"state": "finished"}, [0.3, 0.42, 0.5])
    fig = legible(history_figure([("a", read_history(tmp_path / "a"))]))
    before = fig.to_json()

    def drawn():  # what st.plotly_chart sends for it
        return plotly.io.to_json(plotly.tools.return_figure_from_figure_or_data(fig, validate_figure=True),
                                 validate=False)

    alone, seen = drawn(), []
    threads = [threading.Thread(target=lambda: seen.extend(drawn() for _ in range(10))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 80 and set(seen) == {alone} and fig.to_json() == before
