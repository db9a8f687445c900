"""A run's filter atlas: what the Filters page and the report would otherwise compute on first use, computed
once and kept in the run folder (atlas.npz), for every conv layer the page offers.

    fer-studio atlas --run artifacts/runs/resnet10_fer [--patterns 64] [--layer-patterns 2]

It holds every conv layer's Ranking on the bundled PublicTest faces (each filter's mean peak response and its
9 top faces: which filters to show first and the faces beside them), the synthesised patterns of the
`patterns` most active filters of the layer the page opens on, and of the `layer-patterns` most active of
every other layer (the ones the page shows by default), made exactly as the page makes them (fft
parametrisation, seed 0). An atlas names the checkpoint it was made from (its SHA-256) and the faces (their
ids' SHA-256): an atlas of other weights or other faces is ignored, and the page computes live as before.
An atlas of the first format (one layer, every face's response to every filter) is still read, for that layer.
"""
from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_models.core.arguments import OneLineParser, bounded_int
from fer_models.core.guards import npz_members
from fer_models.explain.features import TOP, Ranking
from fer_models.runs.folder import ATLAS_FILE, MODEL_FILE, RunFolder

PATTERNS = 64
LAYER_PATTERNS = 8  # the filters the Filters page shows by default: with all eight stored, each layer it offers
#                    shows them at once (with two, a deep densenet201_fer layer took 33 s for the other six)
# an atlas of the first format of densenet201_fer (3,589 faces x 1,920 filters in float16) inflated to 14 MB
MAX_ATLAS_BYTES = 256 << 20
MAX_PATTERNS = 512  # -1 once meant "all but one": 1,919 patterns of densenet201_fer, an hour


def checkpoint_hash(run) -> str:
    digest = hashlib.sha256()
    with open(Path(run) / MODEL_FILE, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ids_hash(ids) -> str:
    return hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()


@dataclass
class Atlas:
    """One layer's part of a run's atlas."""
    layer: str
    ranking: Ranking
    filters: np.ndarray          # which channels have a pattern, highest mean response first
    patterns: np.ndarray         # len(filters) x 48 x 48 uint8
    activation: np.ndarray       # each pattern's mean activation
    start_activation: np.ndarray  # ... and that of the noise it started from

    def pattern(self, channel: int):
        """The stored Visualisation of a channel, or None."""
        from fer_models.explain.features import Visualisation

        where = np.flatnonzero(self.filters == channel)
        if not len(where):
            return None
        i = int(where[0])
        return Visualisation(self.layer, channel, self.patterns[i], float(self.start_activation[i]),
                             float(self.activation[i]))


def build_atlas(model, meta: dict, images: np.ndarray, layer: str | None = None, patterns: int = PATTERNS,
                layer_patterns: int = LAYER_PATTERNS, on_step=None, on_batch=None,
                known: dict | None = None) -> dict[str, Atlas]:
    """Every conv layer's part, the page's first layer (`layer`, by default the one it opens on) first with
    `patterns` patterns, each other with `layer_patterns`; `on_batch(faces done, faces)` hears the ranking,
    `on_step(step, steps)` the synthesis of all the patterns.
    `known`: parts of an atlas of these weights and faces, whose patterns are kept rather than made again."""
    from fer_models.explain.features import layer_rankings, maximise_filters

    layer = layer or model.deepest_filter_layer()
    names = [layer] + [n for n in model.conv_layers() if n != layer]
    norm, known = meta["normalisation"], known or {}
    rankings = layer_rankings(model, names, images, norm["mean"], norm["std"], on_batch=on_batch)
    wanted = {n: [] if model.sees_the_image(n) else rankings[n].most_active()[:patterns if n == layer else
                                                                             layer_patterns] for n in names}
    stored = {n: {c: known[n].pattern(c) for c in wanted[n]} if n in known else {} for n in names}
    todo = {n: [c for c in wanted[n] if stored[n].get(c) is None] for n in names}
    parts, done = sum(1 for n in names if todo[n]), [0]

    def heard(i: int, n: int) -> None:
        if on_step is not None:
            on_step(done[0] * n + i, parts * n)
    atlases = {}
    for name in names:
        if todo[name]:
            stored[name].update(zip(todo[name], maximise_filters(model, name, todo[name], meta, on_step=heard)))
            done[0] += 1
        made = [stored[name][c] for c in wanted[name]]
        atlases[name] = Atlas(name, rankings[name], np.array([v.channel for v in made], np.int64),
                              np.stack([v.image for v in made]) if made else np.zeros((0, 48, 48), np.uint8),
                              np.array([v.activation for v in made], np.float32),
                              np.array([v.start_activation for v in made], np.float32))
    return atlases


def save_atlas(run, atlases: dict[str, Atlas], ids) -> Path:
    """Writes build_atlas's layers; the first is the page's first layer."""
    from fer_models.core.files import atomic_replace

    path = Path(run) / ATLAS_FILE
    parts = list(atlases.values())
    cat = np.concatenate
    arrays = dict(layer=np.array(parts[0].layer), checkpoint=np.array(checkpoint_hash(run)),
                  ids=np.array(ids_hash(ids)), layers=np.array([a.layer for a in parts]),
                  channels=np.array([len(a.ranking.mean) for a in parts], np.int64),
                  mean=cat([a.ranking.mean for a in parts]).astype(np.float32),
                  top=cat([a.ranking.top for a in parts]).astype(np.int32),
                  peak=cat([a.ranking.peak for a in parts]).astype(np.float16),
                  pattern_layer=cat([np.full(len(a.filters), i, np.int64) for i, a in enumerate(parts)]),
                  filters=cat([a.filters for a in parts]).astype(np.int64),
                  patterns=cat([a.patterns for a in parts]),
                  activation=cat([a.activation for a in parts]).astype(np.float32),
                  start_activation=cat([a.start_activation for a in parts]).astype(np.float32))

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    atomic_replace(path, write)
    return path


def load_atlas(run, layer: str, ids, checkpoint: str | None = None) -> Atlas | None:
    """The part of the run's atlas for this layer, if the atlas is for these faces and the run's current weights
    (checkpoint: the weights' hash, when the caller knows it); None otherwise or when it is missing or
    malformed. Untrusted input: arrays only (no pickle), shapes, types and indices checked."""
    return load_atlas_layers(run, [layer], ids, checkpoint).get(layer)


def load_atlas_layers(run, layers, ids, checkpoint: str | None = None) -> dict[str, Atlas]:
    """load_atlas for several layers from one read of the file: the parts it holds, by layer."""
    if (Path(run) / ATLAS_FILE).is_symlink():  # like eval/, an atlas is the run's own file, not a link out
        return {}
    try:
        data = RunFolder(run).read_bytes(ATLAS_FILE, limit=64 << 20)
    except Exception:  # noqa: BLE001 - missing, a link, too big: no atlas, the page computes live
        return {}
    if data is None:
        return {}
    import io
    try:
        npz_members(data, MAX_ATLAS_BYTES)  # a zip bomb inflated to 1 GB here before this check
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            fields = dict(z)
    except Exception:  # noqa: BLE001 - not an npz: ignored, as if absent
        return {}
    try:
        if str(fields["ids"]) != ids_hash(ids) or str(fields["checkpoint"]) != (checkpoint or checkpoint_hash(run)):
            return {}
        parts = {layer: _layer_part(fields, layer, len(ids)) for layer in layers}
    except (KeyError, ValueError, TypeError, IndexError):  # a key missing, a shape or type wrong: as if absent
        return {}
    return {layer: part for layer, part in parts.items() if part is not None}


def _layer_part(fields: dict, layer: str, faces: int) -> Atlas | None:
    if "responses" in fields:  # the first format: one layer, all of every face's responses
        if str(fields["layer"]) != layer:
            return None
        responses = fields["responses"]
        if responses.ndim != 2 or responses.shape[0] != faces or not np.isfinite(responses).all():
            return None
        ranking, channels = Ranking.of(responses.astype(np.float32)), responses.shape[1]
        mine = np.ones(len(fields["filters"]), bool)
    else:
        names = [str(n) for n in fields["layers"]]
        if layer not in names:
            return None
        channels_of, k = fields["channels"], names.index(layer)
        sizes = (len(names), int(channels_of.sum()), min(TOP, faces))
        if channels_of.shape != (sizes[0],) or channels_of.min() < 1 or fields["mean"].shape != (sizes[1],) or \
                fields["top"].shape != sizes[1:] or fields["peak"].shape != sizes[1:] or \
                fields["top"].dtype.kind not in "iu":
            return None
        at = slice(int(channels_of[:k].sum()), int(channels_of[:k + 1].sum()))
        ranking = Ranking(fields["mean"][at].astype(np.float32), fields["top"][at].astype(np.int64),
                          fields["peak"][at].astype(np.float32))
        if ranking.top.min() < 0 or ranking.top.max() >= faces or not (
                np.isfinite(ranking.mean).all() and np.isfinite(ranking.peak).all()):
            return None
        channels, mine = int(channels_of[k]), fields["pattern_layer"] == k
    filters, patterns = fields["filters"], fields["patterns"]
    k = len(filters)
    if filters.dtype.kind not in "iu" or patterns.shape != (k, 48, 48) or patterns.dtype != np.uint8 or \
            fields["activation"].shape != (k,) or fields["start_activation"].shape != (k,) or mine.shape != (k,) or \
            (k and (filters.min() < 0 or filters[mine].max(initial=0) >= channels)):
        return None
    return Atlas(layer, ranking, filters[mine].astype(np.int64), patterns[mine],
                 fields["activation"][mine].astype(np.float32), fields["start_activation"][mine].astype(np.float32))


def make_for_run(run, patterns: int = PATTERNS, layer_patterns: int = LAYER_PATTERNS, on_step=None,
                 on_batch=None) -> tuple[Path, Atlas]:
    """Build and save the atlas of a run folder on the bundled PublicTest faces; gives the first layer's part."""
    from fer_models.datasets.bundle import BUNDLED_PUBLICTEST
    from fer_models.datasets.loading import load_faces
    from fer_models.runs.checkpoints import load_model

    model, meta = load_model(run)
    faces = load_faces(BUNDLED_PUBLICTEST, splits=["PublicTest"])
    known = load_atlas_layers(run, list(model.conv_layers()), faces.ids)  # patterns made before are kept
    atlases = build_atlas(model, meta, faces.images, patterns=patterns, layer_patterns=layer_patterns,
                          on_step=on_step, on_batch=on_batch, known=known)
    return save_atlas(run, atlases, faces.ids), next(iter(atlases.values()))


def parser() -> OneLineParser:
    p = OneLineParser(prog="fer-studio atlas",
                      description="Precompute a run's filter atlas (atlas.npz in the run folder).")
    p.add_argument("--run", required=True)
    p.add_argument("--patterns", type=bounded_int(0, MAX_PATTERNS), default=PATTERNS,
                   help=f"filters of the page's first layer whose pattern is synthesised (0..{MAX_PATTERNS})")
    p.add_argument("--layer-patterns", type=bounded_int(0, 16), default=LAYER_PATTERNS,
                   help="filters of every other conv layer whose pattern is synthesised (0..16)")
    return p


def main(argv=None) -> int:
    from fer_models.runs.checkpoints import CheckpointError

    args = parser().parse_args(argv)
    said = [0.0]

    def progress(i: int, n: int) -> None:  # densenet201_fer's 200 layers take half an hour: say how far it is
        if time.monotonic() - said[0] > 30 or i == n:
            said[0] = time.monotonic()
            print(f"patterns: ascent step {i:,} of {n:,}", file=sys.stderr, flush=True)
    try:
        path, atlas = make_for_run(args.run, args.patterns, args.layer_patterns, on_step=progress)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB): every conv layer's filters ranked, "
          f"{len(atlas.filters)} patterns of {atlas.layer}, {args.layer_patterns} of each other layer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
