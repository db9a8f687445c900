"""The HTML pieces the report is made of: escaped text, inline PNGs, Plotly figures drawn once the packed plotly.js
is unpacked, MathML equations (block, and inline in a sentence's $...$) and tables."""
from __future__ import annotations

import base64
import functools
import html
import io
import re
from pathlib import Path

import numpy as np


def escaped(value) -> str:
    return html.escape(str(value))


def png_base64(image: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode()


def picture(image: np.ndarray, name: str, caption: str = "", width: int | None = None) -> str:
    """An inline PNG with its caption (HTML, its text escaped by the caller) and a link that saves it as name.png."""
    data = f"data:image/png;base64,{png_base64(image)}"
    size = f' width="{width}"' if width else ""
    # the caption's text as the alt, escaped once: escaping the caller's HTML again wrote "&amp;#x27;" in it
    alt = escaped(html.unescape(re.sub(r"<[^>]*>", "", caption)) or name)
    # the link takes the picture's own data when clicked: written out twice, the pictures were 0.9 of a 3.0-MiB
    # report (densenet201_fer)
    return (f'<figure><img src="{data}" alt="{alt}"{size}><figcaption>{caption}'
            f' <a download="{escaped(name)}.png" href="#" onclick="this.href=this.closest(\'figure\')'
            f'.querySelector(\'img\').src">PNG</a></figcaption></figure>')


def plotly_div(fig, name: str) -> str:
    """The figure's div; its drawing script waits (PLOT_LATER) until PLOTLY_LOADER has unpacked plotly.js."""
    from fer_models.teaching.figures import legible
    config = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": name}}
    # a template of its own: built inside the dashboard, a figure takes Streamlit's, which leaves margins to the
    # browser's theme, and the report's bottom panels lost their tick labels under a 10 px margin
    fig.update_layout(template="plotly_white")
    div = legible(fig).to_html(full_html=False, include_plotlyjs=False, config=config)
    return re.sub(r'<script( type="text/javascript")?>', f'<script type="{PLOT_LATER}">', div)


PLOT_LATER = "text/x-plot-once-plotly-is-unpacked"
# The report draws scatter, bar and heatmap traces only: it carries plotly.js's cartesian bundle (npm
# plotly.js-cartesian-dist-min, MIT, beside this file with its LICENSE; the version plotly.py bundles, which
# requirements.txt pins to its major version), 0.5 MB gzipped, where the full plotly.js was 1.4 MB gzipped and
# 1.9 MB of a 3.4-MiB report as base64. The browser unpacks it (DecompressionStream: Chrome/Edge 80, Firefox
# 113, Safari 16.4), then draws each figure; the file stays one self-contained page that loads nothing.
PLOTLY_BUNDLE = Path(__file__).with_name("plotly-cartesian.min.js.gz")
PLOTLY_LOADER = """<script>
(async () => {
  const later = [...document.querySelectorAll('script[type="%(later)s"]')];
  const run = code => { const s = document.createElement("script"); s.textContent = code; document.head.append(s); };
  try {
    const packed = Uint8Array.from(atob(document.getElementById("plotly-gz").textContent), c => c.charCodeAt(0));
    run(await new Response(new Blob([packed]).stream().pipeThrough(new DecompressionStream("gzip"))).text());
    later.forEach(s => run(s.textContent));
  } catch (err) {
    later.forEach(s => s.parentElement.insertAdjacentHTML("afterbegin", "<p><b>This browser cannot unpack the "
      + "report's charts: open the file in a current Chrome, Edge, Firefox or Safari.</b></p>"));
  }
})();
</script>"""


@functools.lru_cache(maxsize=1)
def plotly_packed() -> str:
    return base64.b64encode(PLOTLY_BUNDLE.read_bytes()).decode("ascii")


def math(latex: str) -> str:
    from latex2mathml.converter import convert

    # the namespace attribute is only needed in XML; HTML5 knows <math>, and the file then names no URL
    return convert(latex, display="block").replace(' xmlns="http://www.w3.org/1998/Math/MathML"', "")


def steps_html(steps) -> str:
    return "".join(f"<p>{inline_math(text)}</p>{math(latex)}" for text, latex in steps)


def inline_math(text: str) -> str:
    """A sentence with $...$ math in it: the words escaped, each $...$ as inline MathML."""
    from latex2mathml.converter import convert

    parts = re.split(r"\$([^$]+)\$", text)
    return "".join(escaped(part) if i % 2 == 0 else
                   convert(part, display="inline").replace(' xmlns="http://www.w3.org/1998/Math/MathML"', "")
                   for i, part in enumerate(parts))


def table_html(df, counts: tuple[str, ...] = ()) -> str:
    """`counts`: integer columns written with thousands separators, as the text around the table writes them."""
    return df.to_html(index=False, border=0, classes="table", float_format=lambda v: f"{v:.3g}", na_rep="–",
                      formatters={c: "{:,}".format for c in counts})


def markdown_bold(text: str) -> str:
    """The **bold** and `code` of the sentences the pages also show, as HTML (everything else escaped)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped(text)))


# elements whose words are left as they are: headings, links, math, code and the terms' own list
PLAIN = {"math", "script", "style", "a", "h1", "h2", "h3", "dt", "dd", "code", "abbr", "title"}


def first_uses(body: str, terms: dict[str, str]) -> str:
    """Each term's first use in the report's running text as an <abbr> whose tooltip is its sentence: a report has
    no help icons, and the list at its end was the only place that said what "top-2 accuracy" is."""
    left, depth, out = dict(terms), 0, []
    for part in re.split(r"(<[^>]+>)", body):
        tag = re.match(r"<(/?)([a-zA-Z0-9]+)", part)
        if tag:
            if tag.group(2).lower() in PLAIN and not part.endswith("/>"):
                depth += -1 if tag.group(1) else 1
        elif depth == 0 and left:
            found = [(m.start(), term) for term in left for m in [re.search(rf"(?<![\w-]){re.escape(term)}(?![\w-])",
                                                                               part)] if m]
            for at, term in sorted(found, reverse=True):  # from the end: earlier positions stay where they were
                part = f"{part[:at]}<abbr title='{escaped(left.pop(term))}'>{term}</abbr>{part[at + len(term):]}"
        out.append(part)
    return "".join(out)
