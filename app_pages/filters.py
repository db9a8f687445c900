"""Filters: what each conv filter of the selected run responds to, on a face and in general."""
import time

import numpy as np
import streamlit as st

from app_pages._access import may_change_server
from app_pages._face_picker import pick_face, show_model_input
from app_pages._filters_view import (
    atlas_stamp,
    cached_atlas,
    empty_row,
    filter_row,
    pattern_store,
    ranked_faces,
    synthesis_progress,
)
from app_pages._shared import checkpoint_key, follow_url, md, selected_model, time_left, to_url, url_value
from fer_models.datasets.bundle import BUNDLED_PUBLICTEST
from fer_models.explain.atlas import LAYER_PATTERNS
from fer_models.explain.attributions import face_input
from fer_models.explain.features import feature_maps, maximise_filters
from fer_models.explain.pictures import enlarge, framed, to_uint8

FIRST = 1  # patterns synthesised first, alone: on a deep densenet201_fer layer one filter's 96 ascent steps take
#           4.6 s, seven together 13.1 (bench/threads.py, a page's one thread); with two first, none showed for 12 s

st.title("Filters")
st.caption("Feature maps show where a layer's filters fire on one face; the synthesised patterns show what "
           "excites a filter most, beside the PublicTest faces that excite it most.")


def offer_atlas(run, model) -> None:
    """A run whose atlas lacks this layer: make one here (the CLI's job, with progress)."""
    from fer_models.explain import atlas as atlases

    st.caption(f"Run {md(run.name)} has no filter atlas for this layer: its ranking and patterns are computed on "
               "each server start.")
    if not may_change_server():  # it writes into the run folder: on a shared dashboard, the teacher's to do
        return
    if not st.button(f"Precompute the atlas: every conv layer's ranking, the {atlases.PATTERNS} most active "
                     f"filters' patterns of {model.deepest_filter_layer()} and the {LAYER_PATTERNS} first "
                     "of every other layer, saved in the run folder (patterns already made are kept)",
                     icon=":material/bolt:"):
        return
    bar, started = st.progress(0.0, text="Ranking the PublicTest faces…"), time.monotonic()

    def stepped(i: int, n: int) -> None:
        share = 0.1 + 0.9 * i / n
        bar.progress(share, text=f"Patterns: step {i:,} of {n:,}{time_left(started, share)}")
    try:
        atlases.make_for_run(run.path, on_step=stepped,
                             on_batch=lambda done, n: bar.progress(0.1 * done / n, text=f"Ranking: {done:,} faces"))
    except OSError as err:
        st.error(f"Could not write the atlas into {md(run.path)}: {md(err.strerror or err)}.")
        return
    bar.empty()
    st.rerun()


run, model, meta = selected_model()
layers = model.conv_layers()
names = list(layers)

pick, right = st.columns([1, 2], gap="large")
with pick:
    face = pick_face(run)
    if face is not None:
        show_model_input(face)
with right:
    # in the URL, as One convolution's: a reload or a shared link opened on the deepest layer
    asked, held = url_value("layer"), st.session_state.get(f"filters_layer_{run.arch}")
    follow_url(f"filters_layer_{run.arch}", "layer",
               asked if asked in layers else held if held in layers else model.deepest_filter_layer())
    layer = st.selectbox("Layer", names, key=f"filters_layer_{run.arch}",
                         help=f"{len(names)} conv layers; type part of a name to find one. The page opens on the "
                              "deepest whose kernel is wider than 1×1 and whose maps are at least 3×3: past it a "
                              "map is too small to show where on the face a filter fires.",
                         format_func=lambda n: f"{n} ({layers[n].out_channels} filters, "
                                               f"{layers[n].kernel_size[0]}×{layers[n].kernel_size[1]})")
    to_url(layer=layer)
    # the patterns first: they are what the page is for, on the first screen beside the face; the face's own
    # feature maps one click away
    patterns_tab, maps_tab = st.tabs(["What excites a filter", "Feature maps on this face"])
channels = layers[layer].out_channels
maps = None
with maps_tab:
    if face is None:
        st.info("Pick a face to see this layer's feature maps on it.")
    else:
        maps = feature_maps(model, layer, face_input(face.pixels, meta))
        means = maps.mean((1, 2))
        order = np.argsort(-means)
        if maps.shape[1:] == (1, 1):  # above the tiles: below 32 of them it was off a 720-px screen
            st.caption(f"Each map is one cell: by {layer} the network has pooled and strided the 48×48 face down "
                       "to a single position, so a filter here says only how strongly its feature is present "
                       "somewhere in the face, no longer where.")
        shown = st.slider("Feature maps shown, most active first", 1, channels, min(32, channels))
        tiles = to_uint8(np.maximum(maps[order[:shown]], 0))
        # no-break spaces: a caption that wraps, wraps between filters' values, never inside one
        st.image([framed(enlarge(t, 72)) for t in tiles], width=74,
                 caption=[f"#{c}\u00a0·\u00a0{means[c]:.2f}" for c in order[:shown]])
        st.caption(f"{layer} output ({maps.shape[1]}×{maps.shape[2]} per filter) for this face, on one shared "
                   "scale: white is the strongest response of the layer, black zero or below.")
with patterns_tab:
    left, mid, switch = st.columns([2, 4, 3], vertical_alignment="bottom")
    count = left.slider("Filters", 1, min(16, channels), min(LAYER_PATTERNS, channels))  # the atlas holds these
    ranked = BUNDLED_PUBLICTEST.exists()
    ways = (["most active on PublicTest"] if ranked else []) \
        + (["most active on this face"] if maps is not None else []) + ["by number"]
    # by default the filters most active over PublicTest: the ones the run's atlas holds patterns for (and the
    # report shows), so that a first visit reads them instead of synthesising them
    how = mid.selectbox("Which filters", ways, index=0)
    kernels = model.sees_the_image(layer)  # a first layer's pattern is its kernel: nothing to synthesise
    fft = switch.toggle("Smooth (FFT)", value=True, disabled=kernels,
                        help="On: the pattern is optimised through its Fourier coefficients scaled by 1/frequency "
                             "(the FFT parametrisation), which gives smoother, more natural patterns. Off: plain "
                             "pixel ascent, which finds high-frequency noise."
                             + (" Off here: this layer reads the face itself, so its kernels are shown." if kernels
                                else ""))
    if how == "by number":
        numbers = st.multiselect("Filter numbers", range(channels), default=list(range(count)), max_selections=16)
    # the rows are laid out (empty) before the ranking and the synthesis, which say how far they are above them:
    # the last layer's patterns then never stay on screen, faded, under this layer's name while the page works
    status = st.container()
    rows = [empty_row() for _ in range(len(numbers) if how == "by number" else count)]
    with status:
        atlas = cached_atlas(checkpoint_key(run), str(run.path), layer, atlas_stamp(run.path)) if ranked else None
        if ranked:
            # the atlas's rankings are kept apart from live ones: the two differ by float16 rounding
            ranking, faces, labels, ids = ranked_faces(checkpoint_key(run), model, meta, layer, atlas)
            if atlas is None:
                offer_atlas(run, model)
            else:
                st.caption(f"Rankings and the patterns of {len(atlas.filters)} filters come from the run's atlas "
                           "(precomputed by fer-studio atlas); other filters are synthesised now.")
        else:
            ranking = faces = labels = ids = None
            st.info("The bundled PublicTest faces are missing, so the faces that excite each filter cannot be "
                    "shown.")
    if how == "by number":
        chosen = list(numbers)
    elif how == "most active on this face":
        chosen = [int(c) for c in np.argsort(-maps.mean((1, 2)))[:count]]
    else:
        chosen = ranking.most_active()[:count]

    store = pattern_store(checkpoint_key(run), layer, fft)
    if fft and atlas is not None:  # the atlas's patterns are the page's own: fft, seed 0
        store.update({c: atlas.pattern(c) for c in chosen if c not in store and atlas.pattern(c) is not None})
    missing = [] if kernels else [c for c in chosen if c not in store]
    with status:
        if kernels:
            size = "×".join(map(str, layers[layer].kernel_size))
            st.caption(f"{layer} reads the face itself, so each filter is a {size} picture: its weights, red where "
                       "a bright pixel raises the response, blue where it lowers it. Synthesising a pattern for it "
                       f"only tiles that {size} kernel.")
        progress = st.progress(0.0, text=f"Synthesising {len(missing)} pattern(s)…") if missing else None
    slots = dict(zip(chosen, rows))
    for channel in chosen:
        filter_row(channel, layers[layer], kernels, store.get(channel), ranking, faces, labels, ids, slots[channel])
    if missing:
        parts = [p for p in (missing[:FIRST], missing[FIRST:]) if p]
        said = synthesis_progress(progress, [len(p) for p in parts])
        for part in parts:
            store.update(zip(part, maximise_filters(model, layer, part, meta, fft=fft, on_step=said())))
            for channel in part:
                filter_row(channel, layers[layer], kernels, store[channel], ranking, faces, labels, ids,
                           slots[channel], faces_drawn=True)
        progress.empty()
