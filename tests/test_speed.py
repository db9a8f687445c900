"""Which run the live video offers when it lags: each network timed once on this machine (issue 35, item 5)."""
import pytest

from fer_models.media.speed import LIVE_FPS_TARGET, faces_per_second, faster_run, slow_run_offer


def test_a_network_is_timed_in_faces_per_second():
    import torch

    from fer_models.nets.models import create_model

    torch.manual_seed(0)
    fps = faces_per_second(create_model("cnn3").eval(), {"normalisation": {"mean": 0.5, "std": 0.25}}, repeats=3)
    assert 1 < fps < 1e6


def test_the_fastest_pass_counts_not_one_slowed_by_a_busy_server():
    import time

    import torch

    class Busy(torch.nn.Module):  # every other pass waits 50 ms, as on a server busy with another session
        calls = 0

        def forward(self, x):
            self.calls += 1
            time.sleep(0.05 if self.calls % 2 else 0.0)
            return torch.zeros(len(x), 7)

    fps = faces_per_second(Busy(), {"normalisation": {"mean": 0.5, "std": 0.25}}, repeats=4)
    assert fps > 100  # the median (25 ms) would say 40


@pytest.mark.parametrize("live, speeds, offered", [
    (4.0, {"dense": 28.0, "resnet": 250.0, "cnn": 320.0}, "cnn"),      # lagging: the fastest other network
    (LIVE_FPS_TARGET, {"dense": 28.0, "cnn": 320.0}, None),            # keeping up: nothing offered
    (4.0, {"dense": 28.0, "other": 35.0}, None),                      # no other run is clearly faster
    (4.0, {"dense": 28.0}, None),                                     # no other run at all
    (4.0, {"cnn": 320.0}, None),                                      # the current run could not be timed
])
def test_the_faster_run_is_offered_only_when_it_helps(live, speeds, offered):
    assert faster_run("dense", speeds, live) == offered


def test_before_the_stream_starts_a_network_too_slow_for_live_video_is_told_with_the_faster_run():
    speeds = {"dense": 4.0, "cnn": 120.0}
    other, said = slow_run_offer("dense", speeds, speeds["dense"], measured=False)
    assert other == "cnn" and "dense's network alone reads 4.0 faces a second here, under the 15 fps" in said
    assert "cnn's network reads a face 30.0× faster" in said
    said = slow_run_offer("dense", speeds, 9.5)[1]
    # the live rate by reference: the video draws its own figure, and one read here a moment apart differed
    assert said.startswith("The video's frame rate (bottom left) is under 15 fps: labels lag the faces.")
    assert "9.5" not in said
    assert slow_run_offer("cnn", speeds, speeds["cnn"], measured=False) is None  # fast enough: nothing said


def test_an_offer_made_stays_while_the_rate_wobbles_around_15_fps():
    speeds = {"dense": 16.0, "cnn": 150.0}
    assert slow_run_offer("dense", speeds, 15.4) is None  # not offered yet: 15.4 keeps up
    assert slow_run_offer("dense", speeds, 14.6) is not None
    other, said = slow_run_offer("dense", speeds, 15.9, offered=True)  # on screen: it stays, for a click
    assert other == "cnn" and said.startswith("The video's frame rate (bottom left) is at the edge of 15 fps")
    assert slow_run_offer("dense", speeds, 18.5, offered=True) is None  # clearly fast enough: it goes


def test_a_video_analysed_slower_than_real_time_offers_a_faster_run():
    from fer_models.media.speed import video_run_offer

    speeds = {"densenet201_fer": 21.0, "cnn3": 246.0, "resnet10_fer": 90.0}
    other, said = video_run_offer("densenet201_fer", speeds, 0.3)
    assert other == "cnn3" and said.startswith("densenet201_fer analysed this clip at 0.3× real time")
    assert "cnn3's network reads a face 11.7× faster" in said
    assert video_run_offer("densenet201_fer", speeds, 2.5) is None  # it kept up
    assert video_run_offer("cnn3", speeds, 0.5) is None  # no faster network to offer
    assert video_run_offer("gone", speeds, 0.5) is None
