"""Where a command writes: never over a folder, a pipe, a device or its own input, never a half file on a full
disk, never through a link out of a run; each refusal one line, said before any work, the old file kept."""
import json
import os
import threading

import numpy as np
import pytest

from fer_models.core.files import OutputError, checked_output
from fer_models.core.guards import UntrustedFileError, capped_bytes
from fer_models.datasets import bundle
from fer_models.media import predict
from fer_models.runs.folder import RunProblem
from fer_models.teaching import report
from fer_models.training import command as train
from fer_models.training import ship
from helpers import make_evaluated_run, run_cli, write_fer_csv


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    return make_evaluated_run(root, "r")


def test_checked_output_refuses_what_it_must_and_takes_a_new_file(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "input.csv").write_text("kept")
    (tmp_path / "alias.csv").symlink_to(tmp_path / "input.csv")
    keep = [(tmp_path / "input.csv", "the input"), (tmp_path / "run", "the run")]
    for path, says in ((tmp_path, "is a folder"), (tmp_path / "pipe", "not a regular file"),
                       ("/dev/null", "not a regular file"), (tmp_path / "no" / "x.csv", "does not exist"),
                       (tmp_path / "input.csv", "that is the input"), (tmp_path / "alias.csv", "is a link"),
                       (tmp_path / "run" / "eval" / "x.html", "lies inside the run")):
        with pytest.raises(OutputError, match=says):
            checked_output(path, "--out", keep)
    assert checked_output(tmp_path / "new.csv", "--out", keep) == tmp_path / "new.csv"
    assert (tmp_path / "input.csv").read_text() == "kept" and os.path.exists("/dev/null")


def test_capped_bytes_sizes_before_reading_and_never_waits_on_a_pipe(tmp_path):
    sparse = tmp_path / "huge.png"
    with open(sparse, "wb") as f:
        f.truncate(3 << 30)  # 3 GB that take no disk: reading them would take 3 GB of memory
    with pytest.raises(UntrustedFileError, match="3,072 MB, over the 50 MB allowed"):
        capped_bytes(sparse, 50 << 20)
    os.mkfifo(tmp_path / "pipe")
    done = []
    reader = threading.Thread(target=lambda: done.append(pytest.raises(UntrustedFileError, capped_bytes,
                                                                       tmp_path / "pipe", 1 << 20)), daemon=True)
    reader.start()
    reader.join(10)
    assert done and "named pipe" in str(done[0].value)
    (tmp_path / "small.png").write_bytes(b"\x89PNG")
    assert capped_bytes(tmp_path / "small.png", 4) == b"\x89PNG"
    with pytest.raises(UntrustedFileError, match="over the 0 MB allowed"):
        capped_bytes(tmp_path / "small.png", 3)


@pytest.mark.parametrize("name, says", [("model.safetensors", "that is run r's model.safetensors"),
                                        ("eval/PublicTest/report.html", "lies inside run r's eval/"),
                                        ("/dev/null", "not a regular file")])
def test_report_never_writes_over_its_run_or_a_device(evaluated, name, says, capsys, monkeypatch):
    monkeypatch.setattr(report, "build_report", lambda *a, **k: pytest.fail("built before checking --out"))
    before = (evaluated / "model.safetensors").read_bytes()
    code, line = run_cli(report.main, ["--run", str(evaluated), "--out", str(evaluated / name)], capsys)
    assert code == 2 and says in line
    assert (evaluated / "model.safetensors").read_bytes() == before


def test_predict_refuses_its_input_as_csv_and_a_photo_over_the_cap(evaluated, tmp_path, capsys):
    import cv2

    from helpers import face_photo

    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), face_photo(2))
    before = photo.read_bytes()
    code, line = run_cli(predict.main, ["--run", str(evaluated), str(photo), "--csv", str(photo)], capsys)
    assert code == 2 and "that is an input photo" in line and photo.read_bytes() == before
    code, line = run_cli(predict.main, ["--run", str(evaluated), str(photo), "--csv", str(tmp_path / "no" / "t.csv")],
                         capsys)
    assert code == 2 and "does not exist" in line
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(3 << 30)
    code = predict.main(["--run", str(evaluated), str(big), "--detector", "haar", "--csv", str(tmp_path / "t.csv")])
    err = capsys.readouterr().err
    assert code == 1 and "over the 50 MB allowed" in err and "Traceback" not in err


def test_predict_on_a_full_disk_says_so_and_keeps_the_old_table(evaluated, full_disk, tmp_path, capsys):
    import cv2

    from helpers import face_photo

    for i in range(40):
        cv2.imwrite(str(tmp_path / f"face{i}.png"), face_photo(2))
    target = full_disk / "t.csv"
    target.write_text("old table\n")
    with pytest.raises(OSError), open(full_disk / "filler", "wb") as filler:
        while True:  # until the disk is full
            filler.write(b"\0" * 4096)
            filler.flush()
    code = predict.main(["--run", str(evaluated), str(tmp_path), "--detector", "haar", "--csv", str(target)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot be written" in err and "Traceback" not in err
    assert target.read_text() == "old table\n" and not list(full_disk.glob(".t.csv.part"))


def test_bundle_never_replaces_a_pipe_or_its_inputs(tmp_path, capsys, monkeypatch):
    data = write_fer_csv(tmp_path / "fer2013.csv", {"PublicTest": 7})
    monkeypatch.setattr(bundle, "bundle_publictest", lambda *a: pytest.fail("read before checking --out"))
    os.mkfifo(tmp_path / "pipe")
    for out, says in ((tmp_path / "pipe", "not a regular file"), (data, "that is the --data dataset")):
        code, line = run_cli(bundle.main, ["--data", str(data), "--out", str(out)], capsys)
        assert code == 2 and says in line
    assert (tmp_path / "pipe").exists() and data.stat().st_size > 0


def test_train_into_a_folder_with_evaluations_keeps_them(tmp_path, capsys):
    run = tmp_path / "r"
    (run / "eval" / "PublicTest").mkdir(parents=True)
    (run / "eval" / "PublicTest" / "metrics.json").write_text("{}")
    code, line = run_cli(train.main, ["--data", str(tmp_path / "x.csv"), "--out", str(run), "--restart"], capsys)
    assert code == 2 and "eval/" in line and "move eval/ out" in line
    assert (run / "eval" / "PublicTest" / "metrics.json").read_text() == "{}"


@pytest.fixture
def linked_run(evaluated, tmp_path):
    """A copy of the evaluated run whose history.csv is a link to a file outside it."""
    import shutil

    run = tmp_path / "linked"
    shutil.copytree(evaluated, run)
    secret = tmp_path / "secret.txt"
    secret.write_text("API_KEY=do-not-copy\n")
    (run / "history.csv").unlink(missing_ok=True)
    (run / "history.csv").symlink_to(secret)
    (run / "config.json").write_text(json.dumps({"args": {"model": "cnn3"}}))
    return run, secret


def test_ship_copies_no_file_through_a_link(linked_run, tmp_path):
    run, secret = linked_run
    with pytest.raises(RunProblem, match="history.csv: is a link"):
        ship.ship(run, tmp_path / "shipped", tmp_path / "unused.npz")
    assert not (tmp_path / "shipped").exists() and secret.read_text() == "API_KEY=do-not-copy\n"


def test_reevaluate_rewrites_only_the_runs_own_records(linked_run, tmp_path):
    run, _ = linked_run
    (run / "history.csv").unlink()
    notes = tmp_path / "notes.json"
    notes.write_text("{not json: the user's own")
    (run / "notes.json").write_text("{not json: the user's own")
    (run / "meta.json").rename(tmp_path / "meta.json")
    (run / "meta.json").symlink_to(tmp_path / "meta.json")
    with pytest.raises(RunProblem, match="meta.json: is a link"):
        ship.json_records(run)
    (run / "meta.json").unlink()
    (tmp_path / "meta.json").rename(run / "meta.json")
    assert sorted(ship.json_records(run)) == ["config.json", "eval/PublicTest/metrics.json", "meta.json",
                                              "status.json"]
    assert (run / "notes.json").read_text() == "{not json: the user's own"
    assert np.isfinite(json.loads((run / "eval" / "PublicTest" / "metrics.json").read_text())["accuracy"])


def test_a_planted_link_or_an_input_at_the_old_temporary_name_is_left_alone(evaluated, tmp_path, capsys):
    """The rows go to a temporary file of predict's own (random name, created exclusively): a link planted at
    .t.csv.part once received them, and an input named so was emptied before it was read."""
    import cv2

    from helpers import face_photo

    victim = tmp_path / "victim.txt"
    victim.write_text("not yours\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".t.csv.part").symlink_to(victim)
    cv2.imwrite(str(out / "face.png"), face_photo(2))
    (out / ".u.csv.part").write_bytes((out / "face.png").read_bytes())  # an input photo with that name
    assert predict.main(["--run", str(evaluated), str(out / "face.png"), "--detector", "haar",
                         "--csv", str(out / "t.csv")]) == 0
    assert predict.main(["--run", str(evaluated), str(out / ".u.csv.part"), "--detector", "haar",
                         "--csv", str(out / "u.csv")]) == 0
    capsys.readouterr()
    assert victim.read_text() == "not yours\n" and not (out / "t.csv").is_symlink()
    assert (out / ".u.csv.part").read_bytes() == (out / "face.png").read_bytes()
    assert (out / "u.csv").read_text().count("\n") == 2  # the header and the face


def test_an_output_that_is_a_link_is_refused(tmp_path):
    (tmp_path / "file.csv").write_text("kept")
    (tmp_path / "link.csv").symlink_to(tmp_path / "file.csv")
    for path in (tmp_path / "link.csv", "/dev/stdout"):
        with pytest.raises(OutputError, match="is a link"):
            checked_output(path, "--csv")


def test_a_link_inside_an_evaluation_is_not_followed(evaluated, tmp_path, capsys):
    import shutil

    from fer_models.evaluation import mistakes

    run = tmp_path / "linked"
    shutil.copytree(evaluated, run)
    secret = tmp_path / "secret.csv"
    secret.write_text("id,true,pred\nAPI_KEY,1,2\n")
    (run / "eval" / "PublicTest" / "predictions.csv").unlink()
    (run / "eval" / "PublicTest" / "predictions.csv").symlink_to(secret)
    code, line = run_cli(mistakes.main, ["--run", str(run)], capsys)
    assert code == 2 and "predictions.csv: is a link" in line and "API_KEY" not in line


@pytest.mark.parametrize("command", ["mistakes", "evaluate", "atlas"])
def test_a_run_that_is_a_device_is_called_so(command, capsys):
    from fer_models.evaluation import evaluate, mistakes
    from fer_models.explain import atlas

    main = {"mistakes": mistakes.main, "evaluate": evaluate.main, "atlas": atlas.main}[command]
    extra = ["--data", "/nonexistent.csv"] if command == "evaluate" else []
    code, line = run_cli(main, ["--run", "/dev/null", *extra], capsys)
    assert code == 2 and "/dev/null: is a device, not a run folder" in line and "evaluate --run" not in line


def test_the_readme_is_sized_and_decoded_before_it_is_rewritten(tmp_path):
    from fer_models.runs.registry import write_table

    binary = tmp_path / "binary.md"
    binary.write_bytes(b"x \xff\n<!-- models-table -->\n<!-- /models-table -->\n")
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        write_table(binary, tmp_path)
    huge = tmp_path / "huge.md"
    with open(huge, "wb") as f:
        f.truncate(600 << 20)
    with pytest.raises(ValueError, match="600 MB, over the 16 MB allowed"):
        write_table(huge, tmp_path)


def test_a_photo_one_byte_over_the_cap_says_its_bytes(tmp_path):
    photo = tmp_path / "p.png"
    with open(photo, "wb") as f:
        f.truncate((50 << 20) + 1)
    with pytest.raises(UntrustedFileError, match="52,428,801 bytes, over the 50 MB allowed"):
        capped_bytes(photo, 50 << 20)


def test_a_bad_split_is_refused_before_the_report_starts(evaluated, capsys):
    code, line = run_cli(report.main, ["--run", str(evaluated), "--out", "r.html", "--split", "../.."], capsys)
    assert code == 2 and "not a plain name" in line


def test_ship_on_a_full_disk_names_the_place_and_what_was_kept(evaluated, tmp_path, capsys, monkeypatch):
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ship, "ship", full)
    code, line = run_cli(ship.main, ["--run", str(evaluated), "--to", str(tmp_path / "to"), "--data", "x.csv"],
                         capsys)
    assert code == 2 and f"{tmp_path / 'to'}: cannot be written (No space left on device)" in line
    assert "nothing was shipped" in line


def test_a_pipe_or_a_device_given_as_a_photo_or_a_video_is_called_what_it_is(evaluated, tmp_path, capsys):
    from fer_models.media import video

    os.mkfifo(tmp_path / "face.jpg")
    assert predict.photo_paths([tmp_path / "face.jpg", "/dev/zero"])[1] == [
        (str(tmp_path / "face.jpg"), "is a named pipe, not a photo or a folder"),
        ("/dev/zero", "is a device, not a photo or a folder")]
    code, line = run_cli(video.main, ["--run", str(evaluated), "--input", "/dev/zero", "--csv", "t.csv"], capsys)
    assert code == 2 and "--input /dev/zero: is a device, not a regular file" in line
