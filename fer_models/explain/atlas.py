"""A run's filter atlas: what the Filters page and the report would otherwise compute on first use, computed
once and kept in the run folder (atlas.npz), for the layer the page opens on.

    fer-studio atlas --run artifacts/runs/resnet10_fer [--patterns 64]

It holds every bundled PublicTest face's peak response to every filter of that layer (float16, N x C: the
top faces of any filter and the class counts of its top 9 come from it), and the synthesised pattern of the
`patterns` filters with the highest mean peak response (the ones the page and the report show first), made
exactly as the page makes them (fft parametrisation, seed 0). An atlas names the checkpoint it was made
from (its SHA-256) and the faces (their ids' SHA-256): an atlas of other weights or other faces is ignored,
and the page computes live as before.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_models.core.arguments import OneLineParser, bounded_int
from fer_models.core.guards import npz_members
from fer_models.runs.folder import ATLAS_FILE, MODEL_FILE, RunFolder

PATTERNS = 64
# an atlas of densenet201_fer (3,589 faces x 1,920 filters in float16, 64 patterns) inflates to 14 MB
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
    layer: str
    responses: np.ndarray        # N x C float32 (stored as float16)
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
                on_step=None, on_batch=None, responses: np.ndarray | None = None) -> Atlas:
    """`on_batch(faces done, faces)` hears the ranking, `on_step(step, steps)` the patterns' synthesis;
    `responses`, when the caller has already ranked these faces for this layer, are used as they are."""
    from fer_models.explain.features import filter_responses, maximise_filters

    layer = layer or model.deepest_filter_layer()
    norm = meta["normalisation"]
    if responses is None:
        responses = filter_responses(model, layer, images, norm["mean"], norm["std"], on_batch=on_batch)
    chosen = [int(c) for c in np.argsort(-responses.mean(0), kind="stable")[:patterns]]
    made = [] if model.sees_the_image(layer) else maximise_filters(model, layer, chosen, meta, on_step=on_step)
    return Atlas(layer, responses, np.array([v.channel for v in made], np.int64),
                 np.stack([v.image for v in made]) if made else np.zeros((0, 48, 48), np.uint8),
                 np.array([v.activation for v in made], np.float32),
                 np.array([v.start_activation for v in made], np.float32))


def save_atlas(run, atlas: Atlas, ids) -> Path:
    from fer_models.core.files import atomic_replace

    path = Path(run) / ATLAS_FILE
    arrays = dict(layer=np.array(atlas.layer), checkpoint=np.array(checkpoint_hash(run)), ids=np.array(ids_hash(ids)),
                  responses=atlas.responses.astype(np.float16), filters=atlas.filters, patterns=atlas.patterns,
                  activation=atlas.activation, start_activation=atlas.start_activation)

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    atomic_replace(path, write)
    return path


def load_atlas(run, layer: str, ids, checkpoint: str | None = None) -> Atlas | None:
    """The run's atlas if it is for this layer, these faces and the run's current weights (checkpoint: the
    weights' hash, when the caller knows it); None otherwise or when it is missing or malformed. Untrusted
    input: arrays only (no pickle), shapes and types checked."""
    if (Path(run) / ATLAS_FILE).is_symlink():  # like eval/, an atlas is the run's own file, not a link out
        return None
    try:
        data = RunFolder(run).read_bytes(ATLAS_FILE, limit=64 << 20)
    except Exception:  # noqa: BLE001 - missing, a link, too big: no atlas, the page computes live
        return None
    if data is None:
        return None
    import io
    try:
        npz_members(data, MAX_ATLAS_BYTES)  # a zip bomb inflated to 1 GB here before this check
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            fields = {k: z[k] for k in ("layer", "checkpoint", "ids", "responses", "filters", "patterns",
                                        "activation", "start_activation")}
    except Exception:  # noqa: BLE001 - not an npz, a key missing: ignored, as if absent
        return None
    if str(fields["layer"]) != layer or str(fields["ids"]) != ids_hash(ids):
        return None
    if str(fields["checkpoint"]) != (checkpoint or checkpoint_hash(run)):
        return None
    responses, filters, patterns = fields["responses"], fields["filters"], fields["patterns"]
    k = len(filters)
    if responses.ndim != 2 or responses.shape[0] != len(ids) or filters.dtype.kind not in "iu" or \
            patterns.shape != (k, 48, 48) or patterns.dtype != np.uint8 or fields["activation"].shape != (k,) or \
            fields["start_activation"].shape != (k,) or (k and (filters.min() < 0 or
                                                              filters.max() >= responses.shape[1])):
        return None
    if not np.isfinite(responses).all():
        return None
    return Atlas(layer, responses.astype(np.float32), filters.astype(np.int64), patterns,
                 fields["activation"].astype(np.float32), fields["start_activation"].astype(np.float32))


def make_for_run(run, patterns: int = PATTERNS, on_step=None, on_batch=None, responses=None) -> tuple[Path, Atlas]:
    """Build and save the atlas of a run folder on the bundled PublicTest faces."""
    from fer_models.datasets.bundle import BUNDLED_PUBLICTEST
    from fer_models.datasets.loading import load_faces
    from fer_models.runs.checkpoints import load_model

    model, meta = load_model(run)
    faces = load_faces(BUNDLED_PUBLICTEST, splits=["PublicTest"])
    atlas = build_atlas(model, meta, faces.images, patterns=patterns, on_step=on_step, on_batch=on_batch,
                        responses=responses)
    return save_atlas(run, atlas, faces.ids), atlas


def parser() -> OneLineParser:
    p = OneLineParser(prog="fer-studio atlas",
                      description="Precompute a run's filter atlas (atlas.npz in the run folder).")
    p.add_argument("--run", required=True)
    p.add_argument("--patterns", type=bounded_int(0, MAX_PATTERNS), default=PATTERNS,
                   help=f"filters whose pattern is synthesised (0..{MAX_PATTERNS})")
    return p


def main(argv=None) -> int:
    from fer_models.runs.checkpoints import CheckpointError

    args = parser().parse_args(argv)
    try:
        path, atlas = make_for_run(args.run, args.patterns)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB): {atlas.layer}, {atlas.responses.shape[1]} "
          f"filters ranked on {atlas.responses.shape[0]:,} faces, {len(atlas.filters)} patterns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
