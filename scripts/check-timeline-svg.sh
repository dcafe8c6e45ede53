#!/usr/bin/env bash
# Checks a timeline from `lockscope timeline` in a real browser (headless Chromium, Debian's `chromium`
# package) and exits non-zero if anything is wrong:
#   1. statically: well-formed XML, an <svg> root, panels each with series paths (non-empty `d`), a
#      legend entry per series, both axes and a unit; a hover column per second (or merged column); where
#      a panel has spread bands (a sweep chart), one per series in the same order; no script and no
#      reference to anything outside the file (no href/src, url(), @import);
#   2. in Chromium, with the network cut off: the DOM holds as many panels, series and bands as the file;
#      every series has a width, a height where it has values, and lies inside its plot; every band lies
#      inside its plot, its upper edge never below its lower, the medians between them, with height
#      somewhere; legend entries and tick labels do not overlap; every label has a length in the real
#      font and lies inside the image (scripts/timeline-selftest.js);
#   3. with SCREENSHOT: Chromium's screenshot of the file is a PNG of the image's size.
# Usage: scripts/check-timeline-svg.sh TIMELINE.svg [SCREENSHOT.png]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
svg=${1:?usage: scripts/check-timeline-svg.sh TIMELINE.svg [SCREENSHOT.png]}
screenshot=${2:-}
[ -r "$svg" ] || { echo "check-timeline-svg: cannot read $svg" >&2; exit 2; }
# shellcheck source=scripts/chromium-selftest.sh
. "$here/chromium-selftest.sh"
command -v chromium >/dev/null || { echo "check-timeline-svg: chromium not found; install it with: apt-get install -y chromium" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. Static checks; writes the copy with the self-test script and prints the image height.
height=$(python3 - "$svg" "$here/timeline-selftest.js" "$work/selftest.svg" <<'PY'
import re, sys
import xml.etree.ElementTree as ET

svg_path, selftest_path, out_path = sys.argv[1:]
def fail(message):
    print(f"check-timeline-svg: FAIL {message}", file=sys.stderr)
    sys.exit(1)
text = open(svg_path, encoding="utf-8").read()
try:
    root = ET.fromstring(text)
except ET.ParseError as error:
    fail(f"{svg_path} is not well-formed XML: {error}")
ns = "{http://www.w3.org/2000/svg}"
if root.tag != ns + "svg":
    fail(f"the root element is {root.tag}, not an SVG <svg>")
panels = [g for g in root.iter(ns + "g") if g.get("class") == "panel"]
if not panels:
    fail("no <g class=\"panel\">")
series_count = 0
band_count = 0
for panel in panels:
    name = panel.get("data-panel")
    series = [p for p in panel.iter(ns + "path") if p.get("class") == "series"]
    if not series or any(not (p.get("d") or "").startswith("M") for p in series):
        fail(f"panel {name}: no series, or a series without a path")
    series_count += len(series)
    bands = [p for p in panel.iter(ns + "path") if p.get("class") == "band"]
    if bands and [p.get("data-series") for p in bands] != [p.get("data-series") for p in series]:
        fail(f"panel {name}: the bands do not follow its series one for one")
    if any(not (p.get("d") or "").startswith("M") for p in bands):
        fail(f"panel {name}: a band without a path")
    band_count += len(bands)
    legend = [g for g in panel.iter(ns + "g") if g.get("class") == "legend-item"]
    if [g.get("data-series") for g in legend] != [p.get("data-series") for p in series]:
        fail(f"panel {name}: the legend does not name its series in order")
    for axis in ("x-axis", "y-axis"):
        group = [g for g in panel.iter(ns + "g") if g.get("class") == axis]
        ticks = [t for g in group for t in g.iter(ns + "text") if t.get("class") == "tick"]
        if len(group) != 1 or len(ticks) < 2:
            fail(f"panel {name}: {axis} missing or with fewer than two ticks")
    if not [t for t in panel.iter(ns + "text") if t.get("class") == "unit" and (t.text or "").strip()]:
        fail(f"panel {name}: no unit on its y axis")
bins = [r for g in root.iter(ns + "g") if g.get("class") == "bins" for r in g.iter(ns + "rect")]
if len(bins) != int(root.get("data-columns", "-1")) or any(r.find(ns + "title") is None for r in bins):
    fail(f"{len(bins)} hover columns with tooltips for data-columns={root.get('data-columns')}")
for element in root.iter():
    for name, value in element.attrib.items():
        if name.endswith("href") or name == "src":
            fail(f"<{element.tag.replace(ns, '')}> refers to {value}")
if re.search(r"url\(|@import|@font-face|<image|<foreignObject|<script", text):
    fail("the file has a script or refers to outside resources (url(), @import, @font-face, <image>, <foreignObject>)")
selftest = (open(selftest_path, encoding="utf-8").read()
            .replace("@EXPECTED_PANELS@", str(len(panels))).replace("@EXPECTED_SERIES@", str(series_count))
            .replace("@EXPECTED_BANDS@", str(band_count)))
closing = text.rindex("</svg>")
open(out_path, "w", encoding="utf-8").write(
    text[:closing] + "<script type=\"text/ecmascript\"><![CDATA[\n" + selftest + "]]></script>\n" + text[closing:])
print(int(float(root.get("height", "800"))))
PY
)

# 2. In the browser, offline.
chromium_selftest check-timeline-svg "$svg" "$work/selftest.svg" "$work" 1000 "$height" "$screenshot"

# 3. The screenshot is a PNG of the window asked for.
if [ -n "$screenshot" ]; then
    python3 - "$screenshot" 1000 "$height" <<'PY'
import struct, sys
path, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
try:
    data = open(path, "rb").read(24)
except OSError as error:
    print(f"check-timeline-svg: FAIL no screenshot: {error}", file=sys.stderr); sys.exit(1)
if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
    print(f"check-timeline-svg: FAIL {path} is not a PNG", file=sys.stderr); sys.exit(1)
size = struct.unpack(">II", data[16:24])
if size != (width, height):
    print(f"check-timeline-svg: FAIL the screenshot is {size[0]}x{size[1]}, not {width}x{height}", file=sys.stderr); sys.exit(1)
PY
fi
