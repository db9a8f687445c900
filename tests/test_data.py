import gzip
import os

import numpy as np
import pytest
import torch
from PIL import Image

from fer_models.core.constants import EMOTIONS
from fer_models.datasets.augment import AugmentConfig, augment_batch, normalisation_stats
from fer_models.datasets.facedata import DataError
from fer_models.datasets.loading import load_faces
from helpers import synthetic_faces, write_fer_csv


def test_emotions_in_kaggle_order():
    assert EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.mark.parametrize("gz", [False, True])
def test_kaggle_csv_plain_and_gzip(tmp_path, gz):
    path = write_fer_csv(tmp_path / ("f.csv.gz" if gz else "f.csv"), {"Training": 14, "PublicTest": 7,
                                                                       "PrivateTest": 7}, gz=gz)
    data = load_faces(path)
    assert data.images.shape == (28, 1, 48, 48) and data.images.dtype == np.uint8
    assert data.split_sizes() == {"Training": 14, "PublicTest": 7, "PrivateTest": 7}
    expected, labels = synthetic_faces(14, 0)
    np.testing.assert_array_equal(data.images[:14, 0], expected)
    np.testing.assert_array_equal(data.labels[:14], labels)
    assert data.ids[:3].tolist() == ["0", "1", "2"] and data.format == "kaggle"


def test_subset_of_splits_keeps_ids(tmp_path):
    path = write_fer_csv(tmp_path / "f.csv", {"Training": 14, "PublicTest": 7, "PrivateTest": 7})
    data = load_faces(path, splits=["PublicTest"])
    assert len(data) == 7 and set(data.splits) == {"PublicTest"}
    assert data.ids.tolist() == [str(i) for i in range(14, 21)]


def test_parse_cache_is_used_and_invalidated(tmp_path):
    path = write_fer_csv(tmp_path / "f.csv", {"Training": 7})
    first = load_faces(path)
    cache = tmp_path / "f.csv.cache.npz"
    assert cache.exists()
    again = load_faces(path)
    np.testing.assert_array_equal(first.images, again.images)
    write_fer_csv(path, {"Training": 7, "PublicTest": 14}, seed=5)
    os.utime(path, ns=(cache.stat().st_mtime_ns + 10**9,) * 2)
    changed = load_faces(path)
    assert changed.split_sizes() == {"Training": 7, "PublicTest": 14}
    assert not np.array_equal(changed.images[:7], first.images)


def test_cache_goes_elsewhere_when_source_folder_is_read_only(tmp_path, monkeypatch):
    src = tmp_path / "ro"
    src.mkdir()
    path = write_fer_csv(src / "f.csv", {"Training": 7})
    monkeypatch.setenv("FER_STUDIO_CACHE", str(tmp_path / "cache"))
    src.chmod(0o555)
    try:
        load_faces(path)
        assert not (src / "f.csv.cache.npz").exists()
        assert len(list((tmp_path / "cache").glob("*.cache.npz"))) == 1
    finally:
        src.chmod(0o755)


def test_corrupt_cache_is_rebuilt(tmp_path):
    path = write_fer_csv(tmp_path / "f.csv", {"Training": 7})
    load_faces(path)
    (tmp_path / "f.csv.cache.npz").write_bytes(b"garbage")
    assert len(load_faces(path)) == 7


def test_a_cache_whose_arrays_do_not_fit_together_is_rebuilt_not_trusted(tmp_path):
    """A cache with the right stamp but images of another shape and labels out of range: once an IndexError
    traceback in evaluate and train."""
    from fer_models.datasets.cache import source_stamp

    path = write_fer_csv(tmp_path / "f.csv", {"Training": 7, "PublicTest": 7})
    good = load_faces(path)
    np.savez(tmp_path / "f.csv.cache.npz", stamp=np.array(source_stamp(path)), images=np.zeros((14, 3, 10, 10)),
             labels=np.full(5, 99), splits=good.splits, ids=good.ids, format=np.array("kaggle"),
             notes=np.array([], dtype=str))
    again = load_faces(path)
    np.testing.assert_array_equal(again.images, good.images)
    np.testing.assert_array_equal(again.labels, good.labels)


def test_a_gzip_that_unpacks_past_the_cap_is_refused_while_inflating(tmp_path, monkeypatch):
    import fer_models.datasets.kaggle as kaggle

    monkeypatch.setattr(kaggle, "MAX_CSV_BYTES", 1 << 20)
    row = ("0," + " ".join(["0"] * 2304) + ",Training\n").encode()
    with gzip.open(tmp_path / "bomb.csv.gz", "wb") as f:
        f.write(b"emotion,pixels,Usage\n" + row * 300)  # 1.4 MB unpacked, a few kB packed
    assert (tmp_path / "bomb.csv.gz").stat().st_size < 20_000
    with pytest.raises(DataError, match="unpacks to more than 1 MB.*as a .npz"):
        load_faces(tmp_path / "bomb.csv.gz")
    assert not (tmp_path / "bomb.csv.gz.cache.npz").exists()
    plain = tmp_path / "big.csv"
    plain.write_bytes(b"emotion,pixels,Usage\n" + row * 300)
    with pytest.raises(DataError, match="over the 1 MB a CSV may hold"):
        load_faces(plain)


def test_course_variant_labelled_and_unlabelled(tmp_path):
    images, labels = synthetic_faces(5)
    train = tmp_path / "train.csv"
    train.write_text("label,feature\n" + "".join(f"{lab},{' '.join(map(str, im.ravel()))}\n"
                                                 for lab, im in zip(labels, images)))
    test = tmp_path / "test.csv"
    test.write_text("id,feature\n" + "".join(f"{100 + i},{' '.join(map(str, im.ravel()))}\n"
                                             for i, im in enumerate(images)))
    tr = load_faces(train)
    assert tr.labels.tolist() == labels.tolist() and set(tr.splits) == {"Training"}
    te = load_faces(test)
    assert (te.labels == -1).all() and te.ids.tolist() == ["100", "101", "102", "103", "104"]
    assert set(te.splits) == {"Test"}
    assert set(load_faces(test, split_name="Hidden").splits) == {"Hidden"}
    np.testing.assert_array_equal(te.images[:, 0], images)


def test_class_folders_any_size_and_colour(tmp_path):
    root = tmp_path / "tree"
    for split, emotion, name, img in [
        ("train", "happy", "a.png", Image.new("RGB", (96, 80), (200, 10, 10))),
        ("train", "sad", "b.jpg", Image.new("L", (48, 48), 100)),
        ("train", "Surprise", "c.png", Image.new("RGBA", (30, 30), (0, 0, 255, 128))),
        ("test", "angry", "d.png", Image.new("I;16", (64, 64), 40000)),
    ]:
        (root / split / emotion).mkdir(parents=True, exist_ok=True)
        img.save(root / split / emotion / name)
    (root / "train" / "happy" / "notes.txt").write_text("not an image")
    data = load_faces(root)
    assert data.images.shape == (4, 1, 48, 48)
    assert dict(zip(data.ids, data.labels)) == {"test/angry/d.png": 0, "train/happy/a.png": 3,
                                                "train/sad/b.jpg": 4, "train/Surprise/c.png": 5}
    assert data.split_sizes() == {"test": 1, "train": 3}
    assert data.images[data.ids == "train/sad/b.jpg"].max() == 100
    assert any("notes.txt" in n for n in data.notes)  # reported, not silently dropped


def test_class_folder_errors(tmp_path):
    (tmp_path / "t" / "train" / "joyful").mkdir(parents=True)
    with pytest.raises(DataError, match="joyful.*not an emotion"):
        load_faces(tmp_path / "t")
    (tmp_path / "u" / "train" / "happy").mkdir(parents=True)
    (tmp_path / "u" / "train" / "happy" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DataError, match="x.png: not a readable image"):
        load_faces(tmp_path / "u")


def _csv(tmp_path, text, name="bad.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _row(n=2304, value="7"):
    return " ".join([value] * n)


@pytest.mark.parametrize("text, message", [
    ("emotion,pixels\n0," + _row() + "\n", r"bad.csv: its first line lacks the column\(s\) Usage"),
    ("foo,bar\n1,2\n", r"lacks the column\(s\) emotion, pixels, Usage"),
    (f"emotion,pixels,Usage\n0,{_row()},Training\n0,{_row(2300)},Training\n",
     r"bad.csv: line 3: expected 2304 pixel values.*found 2300"),
    (f"emotion,pixels,Usage\n0,{_row()},Training\n0,{_row(2303)} x7,Training\n",
     r"line 3: pixel 2304 is not an integer"),
    (f"emotion,pixels,Usage\n0,{_row()},Training\n0,{_row(2303)} 256,Training\n",
     r"line 3: pixel 2304 is above 255"),
    (f"emotion,pixels,Usage\n0,{_row()},Training\n9,{_row()},Training\n", r"line 3: the label is not one of 0..6"),
    (f"emotion,pixels,Usage\nhappy,{_row()},Training\n", r"line 2: the label is not one of 0..6"),
    (f"emotion,pixels,Usage\n0,{_row()},\n", r"line 2: empty Usage"),
    (f"emotion,pixels,Usage\n0,{_row()},Training,extra\n", r"line 2: expected 3 comma-separated columns, found 4"),
    ("emotion,pixels,Usage\n", r"no images found"),
])
def test_bad_csv_names_file_line_and_problem(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        load_faces(_csv(tmp_path, text))


def test_compensating_pixel_counts_are_caught(tmp_path):
    # one row one value short, the next one long: the totals agree, the rows do not
    path = _csv(tmp_path, f"emotion,pixels,Usage\n0,{_row(2303)},Training\n0,{_row(2305)},Training\n")
    with pytest.raises(DataError, match="line 2: expected 2304"):
        load_faces(path)


def test_empty_or_absent_split(tmp_path, fer_csv):
    with pytest.raises(DataError, match=r"split\(s\) PrivateTest empty or absent.*Training"):
        load_faces(fer_csv, splits=["Training", "PrivateTest"])


def test_not_a_csv_file(tmp_path):
    path = tmp_path / "x.csv.gz"
    path.write_bytes(gzip.compress(b"\x00\x01\x02" * 10)[:-5])
    with pytest.raises(DataError, match="x.csv.gz"):
        load_faces(path)
    with pytest.raises(DataError, match="no such file"):
        load_faces(tmp_path / "missing.csv")


def _ferplus_file(tmp_path, rows):
    head = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"
    path = tmp_path / "fer2013new.csv"
    path.write_text(head + "".join(rows))
    return path


def test_ferplus_majority_rule_and_soft_labels(tmp_path):
    #  Kaggle labels below: synthetic_faces gives 0,1,2,3,4,5,6 for the 7 rows
    fer = write_fer_csv(tmp_path / "fer2013.csv", {"Training": 7})
    _ferplus_file(tmp_path, [
        "Training,fer0.png,0,8,0,0,0,0,0,0,2,0\n",    # clear happiness -> happy (3)
        "Training,fer1.png,0,0,0,0,4,4,0,0,2,0\n",    # anger/disgust tie, original disgust (1) tied -> 1
        "Training,fer2.png,5,0,0,5,0,0,0,0,0,0\n",    # neutral/sad tie, original fear not tied -> first: sad (4)
        "Training,fer3.png,0,0,0,0,0,0,0,9,1,0\n",    # only contempt/unknown -> no usable vote -> -1
        "Training,,0,0,0,0,0,0,0,0,0,10\n",            # FER+ dropped it: not a face -> -1
        "Training,fer5.png,2,0,0,0,0,0,0,0,0,8\n",    # NF majority -> -1
        "Training,fer6.png,3,0,1,0,0,0,0,6,0,0\n",    # contempt ignored -> neutral (6)
    ])
    hard = load_faces(fer, label_source="ferplus-majority")
    assert hard.labels.tolist() == [3, 1, 4, -1, -1, -1, 6]
    assert hard.soft is None and any("not a face" in n for n in hard.notes)
    soft = load_faces(fer, label_source="ferplus-soft")
    np.testing.assert_allclose(soft.soft[0], [0, 0, 0, 1, 0, 0, 0])
    np.testing.assert_allclose(soft.soft[2], [0, 0, 0, 0, .5, 0, .5])
    np.testing.assert_allclose(soft.soft[6], [0, 0, 0, 0, 0, .25, .75])
    assert np.isnan(soft.soft[3]).all() and np.isnan(soft.soft[4]).all()


def test_ferplus_alignment_errors(tmp_path):
    fer = write_fer_csv(tmp_path / "fer2013.csv", {"Training": 7})
    _ferplus_file(tmp_path, ["Training,a.png,1,0,0,0,0,0,0,0,0,0\n"] * 6)
    with pytest.raises(DataError, match="split Training has 6 rows but .* has 7"):
        load_faces(fer, label_source="ferplus-majority")
    _ferplus_file(tmp_path, ["Training,a.png,1,0,x,0,0,0,0,0,0,0\n"] * 7)
    with pytest.raises(DataError, match="line 2: vote counts must be whole numbers ≥ 0"):
        load_faces(fer, label_source="ferplus-majority")
    with pytest.raises(DataError, match="FER\\+ votes file not found"):
        load_faces(fer, label_source="ferplus-soft", ferplus=tmp_path / "nope.csv")


def test_normalisation_stats():
    images = np.full((4, 1, 48, 48), 51, np.uint8)
    images[:2] = 153
    mean, std = normalisation_stats(images)
    assert mean == pytest.approx(0.4) and std == pytest.approx(0.2)


def test_augment_keeps_shape_dtype_and_range():
    x = torch.rand(16, 1, 48, 48) * 2 - 1
    out = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    # bilinear resampling and zero fill never leave the input's range
    assert out.min() >= x.min() - 1e-5 and out.max() <= x.max() + 1e-5
    assert not torch.equal(out, x)


def test_augment_is_reproducible_from_the_generator_seed():
    x = torch.rand(8, 1, 48, 48)
    a = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(3))
    b = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_augment_off_is_identity_and_flip_mirrors():
    x = torch.rand(4, 1, 48, 48)
    off = AugmentConfig(crop_pad=0, flip=False, rotate=0, scale=0, erase=0)
    assert torch.allclose(augment_batch(x, off, torch.Generator()), x, atol=1e-5)
    flip_only = AugmentConfig(crop_pad=0, flip=True, rotate=0, scale=0, erase=0)
    out = augment_batch(x, flip_only, torch.Generator().manual_seed(0))
    for i in range(4):
        assert torch.allclose(out[i], x[i], atol=1e-5) or torch.allclose(out[i], x[i].flip(-1), atol=1e-5)


def test_crop_with_padding_shifts_by_whole_pixels():
    x = torch.rand(32, 1, 48, 48) + 1  # no zeros inside, so the zero fill shows the shift
    out = augment_batch(x, AugmentConfig(crop_pad=4, flip=False, rotate=0, scale=0, erase=0),
                        torch.Generator().manual_seed(1))
    zero_cols = (out == 0).all(dim=2).sum(dim=-1)
    assert zero_cols.max() <= 4 and zero_cols.max() > 0


def test_random_erasing_fills_a_rectangle_with_the_mean():
    x = torch.rand(64, 1, 48, 48) + 1
    out = augment_batch(x, AugmentConfig(crop_pad=0, flip=False, rotate=0, scale=0, erase=1.0),
                        torch.Generator().manual_seed(2))
    erased = (out == 0).float().mean(dim=(1, 2, 3))
    assert (erased > 0).all() and erased.max() <= 0.25 + 0.05 and erased.min() >= 0.02 - 0.01


def test_resized_crop_zooms_in():
    x = torch.rand(8, 1, 48, 48)
    out = augment_batch(x, AugmentConfig(resized_crop=0.5, flip=False, rotate=0, scale=0, erase=0),
                        torch.Generator().manual_seed(0))
    assert out.shape == x.shape and (out != 0).all()  # a crop inside the image: no padding appears



def test_class_folders_are_cached_and_the_cache_follows_the_files(tmp_path):
    root = tmp_path / "tree"
    (root / "train" / "happy").mkdir(parents=True)
    Image.new("L", (48, 48), 10).save(root / "train" / "happy" / "a.png")
    (root / "train" / "happy" / "readme.txt").write_text("x")
    first = load_faces(root)
    assert (tmp_path / "tree.cache.npz").exists() and len(first) == 1
    again = load_faces(root)
    assert again.notes == first.notes and again.source == str(root) and again.format == "folders"
    Image.new("L", (48, 48), 200).save(root / "train" / "happy" / "b.png")
    assert len(load_faces(root)) == 2
