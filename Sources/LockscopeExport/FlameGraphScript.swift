/// The script embedded in every flame graph SVG: hover details, click to zoom, search, reset.
///
/// It reads the geometry from the `<svg>` element's `data-*` attributes and each frame's weight offset
/// (`data-x`), weight (`data-w`) and depth (`data-d`). `flame.zoom`, `flame.unzoom`, `flame.search` and
/// `flame.resetSearch` are callable from outside, which scripts/check-flamegraph-svg.sh does.
enum FlameGraphScript {
    static let source = #"""

"use strict";
var flame = (function () {
  var svg, frames, details, hint, matched, unzoomButton, searchButton;
  var total, left, width, charWidth, padding;
  var searchTerm = null;

  function number(element, key) { return Number(element.getAttribute("data-" + key)); }
  function allFrames() { return frames.querySelectorAll("g.f"); }
  function lines(frame) { return frame.querySelector("title").textContent.split("\n"); }
  function nameOf(frame) { return lines(frame)[0]; }

  function init() {
    svg = document.documentElement;
    frames = document.getElementById("frames");
    details = document.getElementById("details");
    hint = details.textContent;
    matched = document.getElementById("matched");
    unzoomButton = document.getElementById("unzoom");
    searchButton = document.getElementById("search");
    total = number(svg, "total");
    left = number(svg, "side-margin");
    width = Number(svg.getAttribute("width")) - 2 * left;
    charWidth = number(svg, "char-width");
    padding = number(svg, "label-padding");
    frames.addEventListener("mouseover", function (event) {
      var frame = event.target.closest("g.f");
      if (frame) details.textContent = describe(frame);
    });
    frames.addEventListener("mouseout", function (event) {
      if (event.target.closest("g.f")) details.textContent = hint;
    });
    frames.addEventListener("click", function (event) {
      var frame = event.target.closest("g.f");
      if (frame) zoom(frame);
    });
    unzoomButton.addEventListener("click", unzoom);
    searchButton.addEventListener("click", function () {
      if (searchTerm === null) askSearch(); else resetSearch();
    });
    window.addEventListener("keydown", function (event) {
      if ((event.ctrlKey || event.metaKey) && event.key === "f") {
        event.preventDefault();
        askSearch();
      } else if (event.key === "Escape") {
        unzoom();
        resetSearch();
      }
    });
  }

  // "name: wait 1.23 ms (45.67%), 12 contentions (10.00%)"
  function describe(frame) {
    var text = lines(frame);
    return text[0] + ": " + text.slice(1).join(", ");
  }

  function label(name, frameWidth) {
    var fitting = Math.floor((frameWidth - 2 * padding) / charWidth);
    if (fitting < 3) return "";
    return name.length <= fitting ? name : name.slice(0, fitting - 2) + "..";
  }

  function place(frame, x, frameWidth) {
    var rect = frame.querySelector("rect"), text = frame.querySelector("text");
    rect.setAttribute("x", x.toFixed(2));
    rect.setAttribute("width", frameWidth.toFixed(2));
    text.setAttribute("x", (x + padding).toFixed(2));
    text.textContent = label(nameOf(frame), frameWidth);
  }

  // Shows `target` across the whole width with everything under it; its ancestors stay, faded.
  function zoom(target) {
    if (number(target, "d") === 0) { unzoom(); return; }
    var x0 = number(target, "x"), w0 = number(target, "w"), d0 = number(target, "d");
    unzoomButton.classList.remove("hidden");
    allFrames().forEach(function (frame) {
      var x = number(frame, "x"), w = number(frame, "w"), d = number(frame, "d");
      if (d < d0 && x <= x0 && x + w >= x0 + w0) {
        frame.classList.remove("hidden");
        frame.classList.add("parent");
        place(frame, left, width);
      } else if (d >= d0 && x >= x0 && x + w <= x0 + w0) {
        frame.classList.remove("hidden", "parent");
        place(frame, left + (x - x0) / w0 * width, w / w0 * width);
      } else {
        frame.classList.add("hidden");
      }
    });
  }

  function unzoom() {
    unzoomButton.classList.add("hidden");
    allFrames().forEach(function (frame) {
      frame.classList.remove("hidden", "parent");
      place(frame, left + number(frame, "x") / total * width, number(frame, "w") / total * width);
    });
  }

  function askSearch() {
    var term = window.prompt("Search frames (regular expression):", searchTerm || "");
    if (term) search(term);
  }

  // Highlights frames whose name matches `term` (a regular expression) and returns the share of the
  // total they cover, counting nested matches once; -1 for an invalid expression.
  function search(term) {
    var pattern;
    try { pattern = new RegExp(term); } catch (error) {
      matched.textContent = "Invalid search: " + error.message;
      return -1;
    }
    searchTerm = term;
    searchButton.textContent = "Reset Search";
    svg.classList.add("searching");
    var spans = [];
    allFrames().forEach(function (frame) {
      var hit = pattern.test(nameOf(frame));
      frame.classList.toggle("match", hit);
      if (hit) spans.push([number(frame, "x"), number(frame, "x") + number(frame, "w")]);
    });
    spans.sort(function (a, b) { return a[0] - b[0]; });
    var covered = 0, end = -Infinity;
    spans.forEach(function (span) {
      if (span[1] > end) { covered += span[1] - Math.max(span[0], end); end = span[1]; }
    });
    var percent = total > 0 ? 100 * covered / total : 0;
    matched.textContent = "Matched: " + percent.toFixed(2) + "%";
    return percent;
  }

  function resetSearch() {
    searchTerm = null;
    searchButton.textContent = "Search";
    svg.classList.remove("searching");
    matched.textContent = " ";
    allFrames().forEach(function (frame) { frame.classList.remove("match"); });
  }

  return { init: init, zoom: zoom, unzoom: unzoom, search: search, resetSearch: resetSearch };
})();

"""#
}
