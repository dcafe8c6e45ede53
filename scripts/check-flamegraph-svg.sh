#!/usr/bin/env bash
# Checks a flame graph from `lockscope flamegraph` in a real browser (headless Chromium, Debian's
# `chromium` package) and exits non-zero if anything is wrong:
#   1. statically: well-formed XML, at least one <g class="f"> frame, each with one rect, label and
#      tooltip, and no reference to anything outside the file (no external href/src, url(), @import);
#   2. in Chromium, with the network cut off: the DOM holds as many frames as the file; hover, click
#      to zoom, Reset Zoom, Escape, Search and Reset Search work and change the DOM as they should;
#      every label fits its frame in the real font; nothing was fetched (scripts/flamegraph-selftest.js).
# Usage: scripts/check-flamegraph-svg.sh FLAMEGRAPH.svg [SCREENSHOT.png]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
svg=${1:?usage: scripts/check-flamegraph-svg.sh FLAMEGRAPH.svg [SCREENSHOT.png]}
screenshot=${2:-}
[ -r "$svg" ] || { echo "check-flamegraph-svg: cannot read $svg" >&2; exit 2; }
# shellcheck source=scripts/chromium-selftest.sh
. "$here/chromium-selftest.sh"
command -v chromium >/dev/null || { echo "check-flamegraph-svg: chromium not found; install it with: apt-get install -y chromium" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. Static checks; writes the copy with the self-test script and prints the frame and image sizes.
read -r frames height < <(python3 - "$svg" "$here/flamegraph-selftest.js" "$work/selftest.svg" <<'PY'
import re, sys
import xml.etree.ElementTree as ET

svg_path, selftest_path, out_path = sys.argv[1:]
def fail(message):
    print(f"check-flamegraph-svg: FAIL {message}", file=sys.stderr)
    sys.exit(1)
text = open(svg_path, encoding="utf-8").read()
try:
    root = ET.fromstring(text)
except ET.ParseError as error:
    fail(f"{svg_path} is not well-formed XML: {error}")
ns = "{http://www.w3.org/2000/svg}"
if root.tag != ns + "svg":
    fail(f"the root element is {root.tag}, not an SVG <svg>")
frames = [g for g in root.iter(ns + "g") if g.get("class") == "f"]
if not frames:
    fail("no <g class=\"f\"> frames")
for g in frames:
    if [child.tag for child in g] != [ns + "title", ns + "rect", ns + "text"]:
        fail(f"a frame holds {[child.tag.replace(ns, '') for child in g]}, not title, rect, text")
for element in root.iter():
    for name, value in element.attrib.items():
        if name.endswith("href") or name == "src":
            fail(f"<{element.tag.replace(ns, '')}> refers to {value}")
if re.search(r"url\(|@import|@font-face|<image|<foreignObject", text):
    fail("the file refers to outside resources (url(), @import, @font-face, <image> or <foreignObject>)")
selftest = open(selftest_path, encoding="utf-8").read().replace("@EXPECTED_FRAMES@", str(len(frames)))
closing = text.rindex("</svg>")
open(out_path, "w", encoding="utf-8").write(
    text[:closing] + "<script type=\"text/ecmascript\"><![CDATA[\n" + selftest + "]]></script>\n" + text[closing:])
print(len(frames), int(float(root.get("height", "600"))))
PY
)

# 2. In the browser, offline.
chromium_selftest check-flamegraph-svg "$svg" "$work/selftest.svg" "$work" 1200 "$height" "$screenshot"
