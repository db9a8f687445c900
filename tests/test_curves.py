"""The History page's sentences on its curves: said only where the run's history shows the puzzle."""
import pandas as pd

from fer_models.runs.recipes import recipe
from fer_models.teaching.curves import curve_notes, epoch_times_note
from helpers import ROOT  # noqa: F401  (puts the project on the path)


def history(train_acc, val_acc, seconds):
    n = len(seconds)
    return pd.DataFrame({"epoch": range(1, n + 1), "train_acc": [train_acc] * n, "val_acc": [val_acc] * n,
                         "seconds": seconds})


def test_training_below_validation_names_the_runs_own_augmentation():
    (note,) = curve_notes(history(0.444, 0.665, [60, 61, 62]), recipe("resnet10_fer_long"))
    assert note.startswith("Training accuracy (44.4% at epoch 3) is below validation accuracy (66.5%)")
    assert "mixup 0.2" in note and "random erasing" in note and "(EMA)" in note
    plain = dict(recipe("cnn3"), mixup=0.0, erase=0.0, crop_pad=0, rotate=0.0, scale=0.0, label_smoothing=0.0,
                 ema=0.0)
    (note,) = curve_notes(history(0.5, 0.6, [60, 61, 62]), plain)
    assert "mixup" not in note and "EMA" not in note and "erasing" not in note


def test_nothing_is_said_where_the_curves_show_nothing_odd():
    assert curve_notes(history(0.8, 0.6, [60, 70, 65]), recipe("cnn3")) == []
    assert curve_notes(pd.DataFrame(), {}) == []


def test_uneven_epochs_are_explained_with_the_runs_figures():
    (note,) = curve_notes(history(0.8, 0.6, [172, 1157, 180, 2131]), recipe("cnn3"))
    assert note.startswith("Epochs took 172–2131 s (median 668 s)") and "shared CPU" in note


def test_epoch_bars_that_do_not_add_up_to_the_training_time_say_why():
    # resnet10_fer's own figures: its trainer timed each epoch with its validation
    bars = pd.DataFrame({"seconds": [105.0] * 40})
    note = epoch_times_note(bars, 3759.1)
    assert note.startswith("The epochs' bars add up to 1.17 h, the training time 1.04 h") and "validation" in note
    assert epoch_times_note(bars, 4200.0) is None  # they agree: nothing to explain
    assert epoch_times_note(bars, None) is None and epoch_times_note(pd.DataFrame(), 3759.1) is None
    assert epoch_times_note(pd.DataFrame({"seconds": [1e308, 1e308, "x"]}), 3759.1) is None  # a crafted history
