// Injected into a copy of a lockscope timeline SVG by check-timeline-svg.sh and run by headless Chromium
// after the page loads. It measures what the browser laid out (getBBox, text lengths) and writes one
// line into the document: "LOCKSCOPE-SELFTEST PASS checks=N panels=P series=S" or
// "LOCKSCOPE-SELFTEST FAIL <what went wrong>; ...".
(function () {
  "use strict";
  var expectedPanels = Number("@EXPECTED_PANELS@");
  var expectedSeries = Number("@EXPECTED_SERIES@");
  var expectedBands = Number("@EXPECTED_BANDS@");
  var failures = [], checks = 0;

  function check(ok, what) {
    checks += 1;
    if (!ok) failures.push(what);
  }
  function all(root, selector) { return Array.prototype.slice.call(root.querySelectorAll(selector)); }
  function overlap(a, b) {
    return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
  }
  function attr(element, name) { return Number(element.getAttribute(name)); }
  // The vertices of a path written as "Mx,y Lx,y ... [Z]" (how lockscope draws lines and bands).
  function vertices(path) {
    return (path.getAttribute("d") || "").replace(/[MLZ]/g, " ").trim().split(/\s+/).filter(function (pair) {
      return pair.length > 0;
    }).map(function (pair) {
      var xy = pair.split(",");
      return { x: Number(xy[0]), y: Number(xy[1]) };
    });
  }

  function run() {
    var root = document.documentElement;
    var width = attr(root, "width"), height = attr(root, "height");
    var panels = all(document, "g.panel");
    var series = all(document, "path.series");
    check(panels.length > 0 && panels.length === expectedPanels, "panels: " + panels.length + " in the DOM, " + expectedPanels + " in the file");
    check(series.length > 0 && series.length === expectedSeries, "series: " + series.length + " in the DOM, " + expectedSeries + " in the file");
    check(all(document, "path.band").length === expectedBands, "bands: " + all(document, "path.band").length + " in the DOM, " + expectedBands + " in the file");

    panels.forEach(function (panel) {
      var name = panel.getAttribute("data-panel");
      var axis = panel.querySelector("g.y-axis line");
      var plotTop = attr(axis, "y1"), base = attr(axis, "y2");
      var plotLeft = attr(axis, "x1");
      var xAxis = panel.querySelector("g.x-axis line");
      var plotRight = attr(xAxis, "x2");
      check(base - plotTop > 50 && plotRight - plotLeft > 400, name + ": plot area " + (plotRight - plotLeft) + "x" + (base - plotTop));

      // Every series is drawn inside its plot, spans time, and has height where it has values.
      all(panel, "path.series").forEach(function (path) {
        var box = path.getBBox(), what = name + "/" + path.getAttribute("data-series");
        check(box.width > 0, what + ": zero width");
        if (Number(path.getAttribute("data-peak")) > 0) check(box.height > 0, what + ": has values but zero height");
        check(box.x >= plotLeft - 0.5 && box.x + box.width <= plotRight + 0.5, what + ": outside the plot horizontally");
        check(box.y >= plotTop - 1.5 && box.y + box.height <= base + 1.5, what + ": outside the plot vertically (" +
              box.y.toFixed(1) + "+" + box.height.toFixed(1) + " in " + plotTop + ".." + base + ")");
      });

      // Spread bands (sweep charts): one per series, inside the plot, its upper edge (the highest run) never
      // below its lower edge (the lowest), the series' medians between the two, and some height somewhere
      // (a band of zero height everywhere is a chart of one run a point).
      all(panel, "path.band").forEach(function (band) {
        var what = name + "/band " + band.getAttribute("data-series"), box = band.getBBox();
        var line = panel.querySelector("path.series[data-series=\"" + band.getAttribute("data-series") + "\"]");
        check(line !== null, what + ": no series of that name");
        check(box.width > 0, what + ": zero width");
        check(box.x >= plotLeft - 0.5 && box.x + box.width <= plotRight + 0.5, what + ": outside the plot horizontally");
        check(box.y >= plotTop - 1.5 && box.y + box.height <= base + 1.5, what + ": outside the plot vertically (" +
              box.y.toFixed(1) + "+" + box.height.toFixed(1) + " in " + plotTop + ".." + base + ")");
        var points = vertices(band), n = points.length / 2, tallest = 0;
        check(n >= 1 && points.length % 2 === 0, what + ": " + points.length + " vertices, not an upper and a lower edge");
        for (var i = 0; i < n; i++) {
          var upper = points[i], lower = points[points.length - 1 - i];
          check(Math.abs(upper.x - lower.x) < 0.01, what + ": edges at different x (" + upper.x + ", " + lower.x + ")");
          // SVG y grows downwards: the upper edge has the smaller y.
          check(upper.y <= lower.y + 0.01, what + ": upper edge below the lower at x=" + upper.x);
          tallest = Math.max(tallest, lower.y - upper.y);
          if (line !== null && Number(line.getAttribute("data-peak")) >= 0 && vertices(line).length === n) {
            var median = vertices(line)[i];
            check(median.y >= upper.y - 0.01 && median.y <= lower.y + 0.01, what + ": median outside the band at x=" + upper.x);
          }
        }
        check(tallest > 0, what + ": zero height everywhere (one run a point?)");
      });

      // A legend entry per series, none overlapping another or the panel's title.
      var items = all(panel, "g.legend-item");
      check(items.length === all(panel, "path.series").length, name + ": " + items.length + " legend entries");
      var boxes = [panel.querySelector("text.panel-title").getBBox()].concat(items.map(function (item) { return item.getBBox(); }));
      for (var i = 0; i < boxes.length; i++) {
        for (var j = i + 1; j < boxes.length; j++) check(!overlap(boxes[i], boxes[j]), name + ": legend entries overlap");
      }
      check(boxes[boxes.length - 1].x + boxes[boxes.length - 1].width <= width, name + ": legend runs off the image");

      // Tick labels: at least two on each axis, none overlapping its neighbour.
      ["g.x-axis text.tick", "g.y-axis text.tick"].forEach(function (selector) {
        var ticks = all(panel, selector).map(function (text) { return text.getBBox(); });
        check(ticks.length >= 2, name + ": " + ticks.length + " ticks for " + selector);
        for (var k = 1; k < ticks.length; k++) check(!overlap(ticks[k - 1], ticks[k]), name + ": tick labels overlap (" + selector + ")");
      });
      check(panel.querySelector("text.unit").textContent.length > 0, name + ": no unit");
    });

    // Every label has a size in the real font and lies inside the image.
    all(document, "text").forEach(function (text) {
      if (text.textContent.length === 0) return;
      var box = text.getBBox();
      check(text.getComputedTextLength() > 0, "text \"" + text.textContent + "\" has no length");
      check(box.x >= 0 && box.y >= 0 && box.x + box.width <= width + 0.5 && box.y + box.height <= height + 0.5,
            "text \"" + text.textContent + "\" is outside the image");
    });

    // One hover column per second, each with its tooltip, side by side.
    var bins = all(document, "g.bins rect");
    check(bins.length === attr(root, "data-columns"), "hover columns: " + bins.length + " in the DOM, data-columns " + root.getAttribute("data-columns"));
    bins.forEach(function (bin, index) {
      check(bin.querySelector("title") !== null && bin.getBBox().width > 0, "column " + index + ": no tooltip or zero width");
    });
    finish(panels.length, series.length);
  }

  function finish(panelCount, seriesCount) {
    var line = failures.length === 0
      ? "LOCKSCOPE-SELFTEST PASS checks=" + checks + " panels=" + panelCount + " series=" + seriesCount
      : "LOCKSCOPE-SELFTEST FAIL " + failures.slice(0, 10).join("; ");
    var text = document.createElementNS("http://www.w3.org/2000/svg", "text");
    text.setAttribute("id", "lockscope-selftest");
    text.textContent = line;
    document.documentElement.appendChild(text);
  }

  window.addEventListener("load", function () {
    setTimeout(function () {
      try { run(); } catch (error) { failures.push("exception: " + error); finish(0, 0); }
    }, 0);
  });
})();
