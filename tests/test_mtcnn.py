"""MTCNN on real photos: found upright, tilted and side by side, eyes levelled in the crop, nothing found where
there is no face, tiny and huge images, and the webcam's frame function on a tilting head."""
import numpy as np
import pytest
import torch

from fer_models.faces.align import measure_template, tilt_degrees
from fer_models.faces.decode import to_gray
from fer_models.faces.detect import detect_faces, draw_faces, find_faces
from fer_models.faces.face import Face, crop_face
from fer_models.faces.mtcnn import detect, nets, weight_files
from helpers import astronaut, tilting_head

# where the astronaut's face is in skimage's 512 x 512 photo (by eye: eyes at y ~ 95, chin at ~ 160)
FACE_CENTRE = (225, 115)


def turned(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """The photo turned counter-clockwise about its centre, the canvas grown so nothing is cut."""
    import cv2

    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
    m[:, 2] += (nw - w) / 2, (nh - h) / 2
    return cv2.warpAffine(rgb, m, (nw, nh), borderMode=cv2.BORDER_REPLICATE)


def test_weights_are_plain_tensors_loaded_without_unpickling_code():
    import pickle

    for path in weight_files():
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert state and all(torch.is_tensor(v) for v in state.values()), path.name
    for net, path in zip(nets(), weight_files()):
        state = torch.load(path, map_location="cpu", weights_only=True)
        assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())
    # the loader refuses what weights_only refuses: a pickle that would call a function
    evil = pickle.dumps(type("Evil", (), {"__reduce__": lambda self: (print, ("ran",))})(), protocol=2)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(__import__("io").BytesIO(evil), weights_only=True)


def test_the_astronaut_is_found_with_landmarks_and_cropped_as_fer2013_crops_are():
    search = find_faces(astronaut())
    assert not search.fallback and len(search.faces) == 1 and "MTCNN" in search.message
    face = search.faces[0]
    assert abs(face.cx - FACE_CENTRE[0]) < 15 and abs(face.cy - FACE_CENTRE[1]) < 15 and 60 < face.size < 110
    assert face.landmarks.shape == (5, 2) and abs(face.angle) < 8
    # in the crop, the landmarks land where MTCNN finds them in FER2013's own faces (the template)
    crop = search.crop(0)
    found = measure_template(crop[None])
    assert found["found"] == 1
    assert abs(found["eye_line_y"] - 18.7) < 2.5 and abs(found["eye_distance"] - 17.9) < 1.5
    assert abs(found["eyes_mid_x"] - 24) < 2.5  # her smile shortens the eye-to-mouth line: it no longer sets the scale


@pytest.mark.parametrize("degrees", [30, -30])
def test_a_tilted_face_is_found_and_its_crop_has_level_eyes(degrees):
    photo = turned(astronaut(), degrees)
    search = find_faces(photo)
    assert not search.fallback and search.faces[0].how == "MTCNN"
    assert abs(search.faces[0].angle - degrees) < 10  # the tilt is read from the eyes
    # measured again, independently: MTCNN's landmarks on the aligned crop itself
    crop = search.crop(0)
    again = measure_template(crop[None])
    assert again["found"] == 1
    assert abs(tilt_degrees(np.array(again["landmarks_median"]))) < 4
    # Haar's upright frontal search alone does not find this face: the tilt is what MTCNN adds
    assert detect_faces(photo, "haar", live=True) == []


def test_two_faces_side_by_side_are_all_boxed_largest_first():
    import cv2

    one = astronaut()[:260, 90:370]
    small = cv2.resize(one, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    canvas = np.full((300, 620, 3), 200, np.uint8)
    canvas[20:280, 10:290] = one
    canvas[60:60 + small.shape[0], 400:400 + small.shape[1]] = small
    search = find_faces(canvas)
    assert len(search.faces) == 2 and "2 faces found" in search.message
    big, little = search.faces
    assert big.size > little.size and big.cx < 300 < little.cx
    drawn = draw_faces(canvas, search.faces, chosen=1)
    for face, colour in ((big, (250, 190, 40)), (little, (40, 200, 80))):  # each landmark drawn, in its colour
        for x, y in face.landmarks.round().astype(int):
            assert tuple(drawn[y, x]) == colour


def test_no_face_in_a_landscape_gives_the_clear_message():
    from skimage.data import rocket

    search = find_faces(rocket())
    assert search.fallback and "No face was found (MTCNN, then Haar" in search.message
    assert "crop the photo around the face" in search.message


@pytest.mark.parametrize("shape", [(1, 1, 3), (8, 8, 3), (30, 40, 3)])
def test_tiny_images_find_nothing_without_failing(shape):
    assert detect(np.full(shape, 128, np.uint8)) == []
    search = find_faces(np.full(shape, 128, np.uint8))
    assert search.fallback and search.crop(0).shape == (48, 48)


def test_a_huge_photo_is_searched_shrunk_and_answers_in_its_own_pixels():
    import cv2

    big = cv2.resize(astronaut(), (4000, 4000), interpolation=cv2.INTER_LINEAR)
    search = find_faces(big)
    face = search.faces[0]
    scale = 4000 / 512
    assert face.how == "MTCNN" and abs(face.cx / scale - FACE_CENTRE[0]) < 15
    assert abs(face.cy / scale - FACE_CENTRE[1]) < 15


def test_detector_choice_is_checked_and_haar_stays_selectable():
    haar = find_faces(astronaut(), "haar")
    assert not haar.fallback and haar.faces[0].how == "Haar frontal" and haar.faces[0].landmarks is None
    with pytest.raises(ValueError, match="detector 'dlib'"):
        detect_faces(astronaut(), "dlib")


def test_aligned_face_turns_with_the_landmarks():
    from fer_models.faces.align import aligned_face

    marks = np.array([[15.3, 18.7], [33.4, 18.7], [24.3, 29.0], [16.9, 38.1], [32.0, 38.1]]) * 4
    upright = aligned_face(marks)
    c, s = np.cos(np.deg2rad(30)), np.sin(np.deg2rad(30))
    centre = np.array([96.0, 96.0])
    # turned 30° counter-clockwise on screen (image y points down)
    turned_marks = (marks - centre) @ np.array([[c, -s], [s, c]]) + centre
    tilted = aligned_face(turned_marks)
    assert tilted.angle == pytest.approx(30, abs=1e-6) and tilted.size == pytest.approx(upright.size)
    image = np.zeros((192, 192), np.uint8)
    assert crop_face(image, tilted).shape == (48, 48)
    assert isinstance(tilted, Face)


def test_webcam_frames_of_a_tilting_head_are_boxed_on_every_detection_frame():
    from fer_models.media.live import LiveAnnotator, LiveSettings
    from fer_models.runs.checkpoints import load_model
    from helpers import ROOT

    model, meta = load_model(ROOT / "artifacts" / "runs" / "cnn3")
    annotator = LiveAnnotator(model, meta, LiveSettings(detect_every=3))
    labels, tilts = [], []
    for i in range(0, 48, 2):  # the head turns from 0 to +25° and back past 0
        annotator.process(np.ascontiguousarray(tilting_head(i)[..., ::-1]))
        tracks = annotator._tracks
        assert len(tracks) == 1 and tracks[0].id == 0, f"frame {i}"
        if (annotator._frame - 1) % 3 == 0:
            assert tracks[0].face.how == "MTCNN" and tracks[0].misses == 0, f"frame {i}: not found"
            tilts.append(tracks[0].face.angle)
        labels.append(annotator.state().faces[0][0])
    assert max(tilts) > 15 and min(tilts) < 5  # it did tilt, and the boxes followed
    assert len(set(labels)) == 1, labels  # and the label held


def test_live_detection_looks_only_for_large_faces_in_a_shrunk_frame(monkeypatch):
    import fer_models.faces.mtcnn as mtcnn

    seen = {}
    real = mtcnn.detect
    monkeypatch.setattr(mtcnn, "detect", lambda rgb, min_face, scale, thresholds: seen.update(
        min_face=min_face, scale=scale, thresholds=thresholds) or real(rgb, min_face, scale, thresholds))
    frame = tilting_head(0)
    assert len(detect_faces(frame, live=True)) == 1
    assert seen == {"min_face": pytest.approx(0.2 * 480), "scale": pytest.approx(240 / 480),
                    "thresholds": mtcnn.LIVE_THRESHOLDS}
    assert to_gray(frame).shape == (480, 640)


def test_candidate_boxes_past_the_image_are_cut_to_it_and_never_wrap_around():
    from fer_models.faces.mtcnn import _crops

    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, :30] = 200  # left half bright
    boxes = torch.tensor([[-50.0, -50.0, -10.0, -10.0, 1.0],   # wholly above and left: nothing to cut
                          [31.0, 1.0, 90.0, 60.0, 1.0],        # the dark right half (1-based, as the reference)
                          [-20.0, 0.0, 30.0, 40.0, 1.0]])      # the bright left half
    crops = (_crops(rgb, boxes, 24) / 0.0078125 + 127.5).round()
    assert crops.shape == (3, 3, 24, 24)
    assert (crops[0] == 0).all() and (crops[1] == 0).all() and (crops[2] == 200).all()
