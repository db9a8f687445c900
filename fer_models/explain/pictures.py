"""Pictures as arrays: enlarged faces, colour maps, overlays and mosaics (for the explain pages and the report)."""
import functools

import numpy as np


def enlarge(image: np.ndarray, size: int = 192) -> np.ndarray:
    """Nearest-neighbour upscaling: every one of the model's 48×48 pixels stays a visible square."""
    k = max(1, size // image.shape[0])
    return np.kron(image, np.ones((k, k) + (1,) * (image.ndim - 2), dtype=image.dtype))


def framed(image: np.ndarray, value: int = 128) -> np.ndarray:
    """A 1-px gray frame: a map at full strength is white, and without one it vanished into a white page."""
    return np.pad(image, ((1, 1), (1, 1)) + ((0, 0),) * (image.ndim - 2), constant_values=value)


def colourise(map_: np.ndarray, signed: bool, top: float | None = None) -> np.ndarray:
    """H x W float -> H x W x 3 uint8: inferno for magnitudes, red (for) / blue (against) around
    white for signed maps, so 0 always looks like 'nothing'."""
    from matplotlib import colormaps

    unit = to_unit(map_, signed, top)
    rgba = colormaps["RdBu_r"]((unit + 1) / 2) if signed else colormaps["inferno"](unit)
    return (rgba[..., :3] * 255 + 0.5).astype(np.uint8)


def overlay(face: np.ndarray, map_: np.ndarray, signed: bool, opacity: float, top: float | None = None) -> np.ndarray:
    """The map laid over the gray face; each pixel's weight grows with the map's strength there,
    so the face shows through where the model sees nothing."""
    strength = np.abs(to_unit(map_, signed, top))[..., None] * opacity
    gray = np.repeat(face.astype(np.float64)[..., None], 3, axis=2)
    return (gray * (1 - strength) + colourise(map_, signed, top) * strength + 0.5).astype(np.uint8)


def mosaic(images: np.ndarray, columns: int, gap: int = 2, fill: int = 255) -> np.ndarray:
    """N x H x W uint8 tiles in a grid with `gap`-pixel white lines between them."""
    n, h, w = images.shape
    rows = -(-n // columns)
    out = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), fill, np.uint8)
    for i, tile in enumerate(images):
        r, c = divmod(i, columns)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = tile
    return out


def to_uint8(maps: np.ndarray) -> np.ndarray:
    """Feature maps C x H x W on one shared scale (0 = black, the largest activation = white), so
    brighter tiles really are stronger responses."""
    top = float(maps.max()) or 1.0
    return (np.clip(maps / top, 0, 1) * 255 + 0.5).astype(np.uint8)


def robust_top(map_: np.ndarray) -> float:
    """The map's display maximum: the 99.5th percentile of |map|, so one extreme pixel does not
    wash the rest out."""
    m = np.abs(np.nan_to_num(map_.astype(np.float64)))
    return float(np.percentile(m, 99.5)) or float(m.max()) or 1.0


def to_unit(map_: np.ndarray, signed: bool, top: float | None = None) -> np.ndarray:
    """Scale a map for display: [0, 1] for unsigned maps, [-1, 1] around 0 for signed ones (so 0
    stays 'no evidence'). `top` shares one scale between maps (say all seven classes)."""
    m = np.nan_to_num(map_.astype(np.float64))
    return np.clip(m / (top or robust_top(m)), -1 if signed else 0, 1)


SCALE_BAR_WIDTH = 105  # px: "against" in 11 pt beside the bar; a page shows it at this width, never scaled down


def scale_bar(signed: bool, top: float, height: int = 240) -> np.ndarray:
    """The colour scale of colourise as a picture (H x W x 3 uint8, read-only: one picture serves every map
    whose ends read the same), its ends labelled with the map's values and what they mean, so that each map on a
    page has its legend beside it. Drawing one held the interpreter 13 ms, for every map each Saliency
    page showed; what it shows of `top` is two significant digits, so the drawings are kept by those."""
    return _scale_bar(bool(signed), float(f"{top:.2g}"), int(height))


@functools.lru_cache(maxsize=256)
def _scale_bar(signed: bool, top: float, height: int) -> np.ndarray:
    """Drawn on a Figure of its own with the Agg canvas, never through pyplot: pyplot's figure registry and
    backend are global, and many sessions draw at once (pyplot here broke other threads' figures:
    'FigureCanvasBase' object has no attribute 'buffer_rgba')."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    dpi, end = 100, 32  # px above and below the bar: each end's label is two lines centred on the end
    height = max(height, 3 * end)
    fig = Figure(figsize=(SCALE_BAR_WIDTH / dpi, height / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.06, end / height, 0.18, 1 - 2 * end / height))
    lo = -top if signed else 0.0
    fig.colorbar(ScalarMappable(Normalize(lo, top), colormaps["RdBu_r" if signed else "inferno"]), cax=ax)
    ticks = [lo, 0.0, top] if signed else [0.0, top]
    words = ["against", "none", "for"] if signed else ["none", "strongest"]
    ax.set_yticks(ticks, [f"{w}\n{t:+.2g}" if signed and t else f"{w}\n{t:.2g}" for w, t in zip(words, ticks)],
                  fontsize=11)  # 15 px, shown at its own size (SCALE_BAR_WIDTH): legible from the back of a room
    canvas.draw()
    picture = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    picture.flags.writeable = False
    return picture
