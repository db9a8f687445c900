"""Webcam: every face the camera sees, boxed with the selected run's reading of its expression, live."""
import plotly.graph_objects as go
import streamlit as st

from app_pages._access import shared
from app_pages._face_picker import detector_setting
from app_pages._shared import chart, checkpoint_key, md, model_of, selected_model, stop_page
from app_pages._video import video_ui
from fer_models.core.constants import EMOTIONS
from fer_models.faces.decode import ImageError, read_image
from fer_models.media.live import LiveAnnotator, annotate_photo, process_frame
from fer_models.media.speed import faces_per_second, slow_run_offer, too_slow, video_run_offer
from fer_models.nets.reach import GRADCAM_RULE
from fer_models.teaching.figures import CLASS_COLOURS
from fer_models.teaching.glossary import GLOSSARY

# a little less room above the title: the live video's START, under its 640×480 picture, ended at 724 px
st.html("<style>[data-testid='stMainBlockContainer'] { padding-top: 1.75rem; }</style>")
st.title("Webcam and video")
# said beside the live video, above the others: above the live one it pushed START below a 720-px screen
PRIVATE = ("Each face boxed with the run's reading. The video goes from your browser to this server and back, "
           "nowhere else.")

run, model, meta = selected_model()

try:
    from streamlit_webrtc import WebRtcMode, webrtc_streamer
except ImportError:  # the snapshot mode still works
    webrtc_streamer = None
modes = (["Live video"] if webrtc_streamer else []) + ["Snapshot", "Video file"]
# one row of controls, the finer settings behind a button: three rows of them put a 640×480 video below the
# first screen of a 1280×720 projector
mode_col, cam_col, more_col = st.columns([2.4, 1.3, 0.9], vertical_alignment="bottom")
with more_col.popover("Settings", icon=":material/tune:"):
    smoothing = st.slider("Smoothing", 0.0, 0.95, 0.6, 0.05,
                          help="Weight of the past in each face's moving average of probabilities: 0 shows every "
                               "frame's own reading, 0.9 reacts over about ten frames.")
    detect_every = st.slider("Detect faces every … frames", 1, 10, 3,
                             help="Between detections each face keeps its box; fewer detections, higher frame rate.")
    detector = detector_setting()
gradcam = cam_col.toggle("Grad-CAM overlay", help=f"{GLOSSARY['Grad-CAM']} Drawn for each face's label, on the "
                         f"model's Grad-CAM layer ({GRADCAM_RULE}).")
mode = mode_col.radio("Mode", modes, horizontal=True, key="webcam_mode", label_visibility="collapsed",
                      help="Live video streams over WebRTC; Snapshot takes one picture with the browser's camera and "
                           "annotates it the same way (for browsers or networks where WebRTC does not connect); "
                           "Video file analyses a recording.")

# one annotator per browser session and checkpoint: its tracks and recording belong to this viewer
key = checkpoint_key(run)
if st.session_state.get("live_key") != key:
    st.session_state["live_key"], st.session_state["live"] = key, LiveAnnotator(model, meta)
annotator: LiveAnnotator = st.session_state["live"]

if mode != "Video file" and shared() and not st.get_option("server.sslCertFile"):
    st.info("A browser gives the camera only to pages served over https or from localhost: on the other machines "
            "of this class the camera stays off until the dashboard is served over https (the README's \"Sharing "
            "with a class\" shows how, with a self-signed certificate). Video files work either way.")


@st.cache_resource(show_spinner="Timing the network on this machine…", max_entries=16)
def network_speed(run_key: str, _model, _meta) -> float:
    """Faces per second the run's network scores here, measured once per checkpoint and server."""
    return faces_per_second(_model, _meta)


def speeds_of_runs() -> dict[str, float]:
    speeds = {}
    for other in st.session_state.get("runs", []):
        loaded = model_of(other) if other.arch and other.state != "unreadable" else None
        if loaded is not None:
            speeds[other.name] = network_speed(checkpoint_key(other), *loaded)
    return speeds


def switch_run(name: str) -> None:
    st.session_state["run_name"] = name  # a callback: it runs before the sidebar's picker is drawn again


def offer_faster_run(rate: float, measured: bool = True) -> None:
    """Under LIVE_FPS_TARGET fps, the run whose network is fastest here, in one click (speed.slow_run_offer)."""
    offered = st.session_state.get("faster_run_offered") == run.name
    if not too_slow(rate, offered):  # asked before speeds_of_runs, which loads and times every run
        st.session_state.pop("faster_run_offered", None)
        return
    offer = slow_run_offer(run.name, speeds_of_runs(), rate, measured, offered)
    if offer is None:
        return
    st.session_state["faster_run_offered"] = run.name
    other, said = offer
    st.warning(md(said))
    if st.button(f"Switch to {md(other)}", key="faster_run", on_click=switch_run, args=(other,)):
        st.rerun(scope="app")  # from inside the status fragment: the sidebar and the annotator follow the new run


def offer_faster_for_video(pace: float) -> None:
    """A clip analysed slower than real time (densenet201_fer with Grad-CAM: 0.3×): the fastest run, one click."""
    offer = video_run_offer(run.name, speeds_of_runs(), pace)
    if offer is None:
        return
    other, said = offer
    st.warning(md(said))
    if st.button(f"Switch to {md(other)}", key="faster_run_video", on_click=switch_run, args=(other,)):
        st.rerun(scope="app")  # from inside the result's fragment: the sidebar and the Analyse button follow


def timeline(recording) -> go.Figure:
    fig = go.Figure([go.Scatter(x=recording["seconds"], y=recording[e], name=e, mode="lines",
                                line=dict(color=CLASS_COLOURS[e])) for e in EMOTIONS])
    fig.update_layout(height=300, margin=dict(t=10, b=10), xaxis_title="seconds", yaxis=dict(range=[0, 1],
                      tickformat=".0%"), legend=dict(orientation="h", y=-0.25))
    return fig


if mode == "Live video":
    # the video and, beside it, what it reads: the whole 640×480 picture on a 1280×720 projector's first screen
    video_col, side = st.columns([4, 1])
    record = side.toggle("Record", help="The largest face's class probabilities over time, as a chart and a CSV "
                         "below the video; starting a recording clears the last one.")
    annotator.configure(smoothing=smoothing, detect_every=detect_every, gradcam=gradcam, recording=record,
                        detector=detector)
    status_slot = side.container()
    side.caption(f"{md(run.name)}'s network reads {network_speed(key, model, meta):.0f} faces a second on this "
                 "machine; the live video also finds and follows the faces, so its frame rate is lower.")
    side.caption(PRIVATE)
    with video_col:
        ctx = webrtc_streamer(key="fer-live", mode=WebRtcMode.SENDRECV,
                              video_frame_callback=lambda frame: process_frame(annotator, frame),
                              # localhost needs no STUN/TURN server, and this machine reaches no network
                              rtc_configuration={"iceServers": []},
                              media_stream_constraints={"video": {"width": 640, "height": 480}, "audio": False},
                              # at least the camera's 640×480: a height from 100vh, inside the component's own
                              # iframe, held it to 320×240 with labels of 4-8 px; at most 960×720, which leaves
                              # its STOP on a 1920×1080 screen (800 px wide there looked small)
                              video_html_attrs={"style": {"width": "100%", "minWidth": "640px", "maxWidth": "960px"},
                                                "autoPlay": True, "controls": False, "muted": True},
                              async_processing=True)

    @st.fragment(run_every=1.0 if ctx.state.playing else None)
    def live_status():
        state = annotator.state()
        playing = ctx.state.playing
        # before START, the network's own speed already tells a run that cannot keep up
        offer_faster_run(state.fps if playing else network_speed(key, model, meta), measured=playing)
        # the frame rate only on the video, bottom left: read here a second apart from it, the two differed
        if not playing:
            st.caption("Press START, under the video, to stream your camera (the browser asks for permission).")
        elif not state.faces:
            st.markdown("No face in view")
        else:
            faces = " · ".join(f"**{label}** {share:.0%}" for label, share in state.faces)
            st.markdown(f"Now: {faces} · {len(state.faces)} face{'s' if len(state.faces) > 1 else ''}")

    @st.fragment(run_every=1.0 if ctx.state.playing and record else None)
    def live_recording():
        recording = annotator.recording()
        if len(recording):
            chart(timeline(recording), width="stretch", key="webcam_timeline")
            st.download_button("Download the recording (CSV)", recording.to_csv(index=False),
                               f"{run.name}_webcam.csv", "text/csv")
        elif record:
            st.caption("Recording: the timeline appears with the first face.")

    with status_slot:
        live_status()
    live_recording()
elif mode == "Video file":
    st.caption(PRIVATE)
    video_ui(run, model, meta, smoothing, detect_every, gradcam, detector, slow=offer_faster_for_video)
else:
    st.caption(PRIVATE)
    annotator.configure(smoothing=smoothing, detect_every=detect_every, gradcam=gradcam, detector=detector)
    shot = st.camera_input("Take a picture")
    if shot is not None:
        try:
            rgb = read_image(shot.getvalue(), "camera picture")
        except ImageError as err:
            st.error(md(err))
            stop_page()
        picture, state = annotate_photo(model, meta, rgb, gradcam=gradcam, detector=detector)
        st.image(picture, width="stretch")
        if state.faces:
            st.markdown("Read: " + " · ".join(f"**{label}** {share:.0%}" for label, share in state.faces))
        else:
            st.warning("No face found in the picture: face the camera, with light on your face, and take another.")
