"""Which run the live video offers when it lags: each network timed once on this machine (issue 35, item 5)."""
import pytest

from fer_models.media.speed import LIVE_FPS_TARGET, faces_per_second, faster_run


def test_a_network_is_timed_in_faces_per_second():
    import torch

    from fer_models.nets.models import create_model

    torch.manual_seed(0)
    fps = faces_per_second(create_model("cnn3").eval(), {"normalisation": {"mean": 0.5, "std": 0.25}}, repeats=3)
    assert 1 < fps < 1e6


@pytest.mark.parametrize("live, speeds, offered", [
    (4.0, {"dense": 28.0, "resnet": 250.0, "cnn": 320.0}, "cnn"),      # lagging: the fastest other network
    (LIVE_FPS_TARGET, {"dense": 28.0, "cnn": 320.0}, None),            # keeping up: nothing offered
    (4.0, {"dense": 28.0, "other": 35.0}, None),                      # no other run is clearly faster
    (4.0, {"dense": 28.0}, None),                                     # no other run at all
    (4.0, {"cnn": 320.0}, None),                                      # the current run could not be timed
])
def test_the_faster_run_is_offered_only_when_it_helps(live, speeds, offered):
    assert faster_run("dense", speeds, live) == offered
