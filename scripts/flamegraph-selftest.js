// Injected into a copy of a lockscope flame graph by check-flamegraph-svg.sh and run by headless
// Chromium after the page loads. It drives the graph the way a person would (hover, click, the
// buttons, Escape) and checks the result in the rendered DOM, then writes one line into the document:
// "LOCKSCOPE-SELFTEST PASS checks=N frames=M" or "LOCKSCOPE-SELFTEST FAIL <what went wrong>; ...".
(function () {
  "use strict";
  var expectedFrames = Number("@EXPECTED_FRAMES@");
  var failures = [], checks = 0;

  function check(ok, what) {
    checks += 1;
    if (!ok) failures.push(what);
  }
  function click(element) { element.dispatchEvent(new MouseEvent("click", { bubbles: true })); }
  function number(element, key) { return Number(element.getAttribute("data-" + key)); }
  function nameOf(frame) { return frame.querySelector("title").textContent.split("\n")[0]; }
  function rectWidth(frame) { return Number(frame.querySelector("rect").getAttribute("width")); }
  function shown(element) { return getComputedStyle(element).display !== "none"; }
  function near(a, b) { return Math.abs(a - b) < 0.01; }

  function run() {
    var root = document.documentElement;
    var frames = Array.prototype.slice.call(document.querySelectorAll("#frames g.f"));
    var total = number(root, "total");
    var fullWidth = Number(root.getAttribute("width")) - 2 * number(root, "side-margin");
    var padding = number(root, "label-padding");
    var unzoomButton = document.getElementById("unzoom");
    var searchButton = document.getElementById("search");

    check(frames.length > 0 && frames.length === expectedFrames,
          "frames: " + frames.length + " in the DOM, " + expectedFrames + " in the file");
    ["zoom", "unzoom", "search", "resetSearch"].forEach(function (name) {
      check(typeof flame === "object" && typeof flame[name] === "function", "flame." + name + " is not a function");
    });
    if (failures.length > 0) return finish();

    function labelsFit(when) {
      frames.filter(shown).forEach(function (frame) {
        var text = frame.querySelector("text");
        if (text.textContent.length === 0) return;
        var room = rectWidth(frame) - 2 * padding + 0.5;
        check(text.getComputedTextLength() <= room,
              when + ": label \"" + text.textContent + "\" is " + text.getComputedTextLength().toFixed(1) +
              " px wide in a " + room.toFixed(1) + " px frame");
        var name = nameOf(frame);
        check(text.textContent === name || (text.textContent.endsWith("..") &&
              name.startsWith(text.textContent.slice(0, -2))), when + ": label \"" + text.textContent + "\" for " + name);
      });
    }
    labelsFit("initially");

    // The on-screen hint: before any hover the bottom line says what hover, click and Search do, in full
    // view (not cut off at the right edge).
    var imageWidth = Number(root.getAttribute("width"));
    function inView(element, what) {
      var box = element.getBBox();
      check(box.width > 0 && box.x >= 0 && box.x + box.width <= imageWidth - number(root, "side-margin") + 0.5,
            what + " spans " + box.x.toFixed(1) + " to " + (box.x + box.width).toFixed(1) + " px of " + imageWidth);
    }
    var detailsLine = document.getElementById("details");
    var hint = detailsLine.textContent;
    check(/[Hh]over/.test(hint) && /click/.test(hint) && /zoom/.test(hint) && /Search/.test(hint),
          "the bottom line does not explain hover, click to zoom and Search: \"" + hint + "\"");
    check(shown(detailsLine), "the hint is not shown");
    inView(detailsLine, "the hint");

    // The legend: as many swatches as fit, then "and N more" for the rest, all of it on screen.
    var legend = document.getElementById("legend");
    var entries = number(legend, "entries");
    var swatches = legend.querySelectorAll(":scope > rect").length;
    var more = document.querySelector("#legend-more text");
    check(swatches > 0 || entries === 0, "the legend shows no swatch of " + entries);
    if (swatches < entries) {
      check(more !== null && more.textContent === "and " + (entries - swatches) + " more",
            "the legend shows " + swatches + " of " + entries + " entries and says \"" + (more ? more.textContent : "nothing") + "\"");
      if (more) inView(more, "\"" + more.textContent + "\"");
    } else {
      check(more === null, "the legend shows all " + entries + " entries and still says \"" + (more ? more.textContent : "") + "\"");
    }
    Array.prototype.forEach.call(legend.querySelectorAll(":scope > text"), function (label) { inView(label, "legend entry " + label.textContent); });

    // Hover: the deepest, widest frame describes itself at the bottom.
    var deepest = frames.reduce(function (best, frame) {
      var d = number(frame, "d"), bestD = number(best, "d");
      return d > bestD || (d === bestD && number(frame, "w") > number(best, "w")) ? frame : best;
    });
    deepest.querySelector("rect").dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    var details = document.getElementById("details").textContent;
    check(details.indexOf(nameOf(deepest) + ": wait ") === 0 && /\(\d+\.\d\d%\)/.test(details) && /\d+ contentions? \(/.test(details),
          "hover shows \"" + details + "\"");
    deepest.querySelector("rect").dispatchEvent(new MouseEvent("mouseout", { bubbles: true }));
    check(document.getElementById("details").textContent === hint, "after the hover the hint is not back");

    // Click to zoom: the widest frame below the root that is not the whole graph (or the deepest).
    var candidates = frames.filter(function (frame) { return number(frame, "d") > 0 && number(frame, "w") < total; });
    var target = candidates.length > 0 ? candidates.reduce(function (a, b) { return number(b, "w") > number(a, "w") ? b : a; }) : deepest;
    var x0 = number(target, "x"), w0 = number(target, "w"), d0 = number(target, "d"), widthBefore = rectWidth(target);
    function relation(frame) {
      var x = number(frame, "x"), w = number(frame, "w"), d = number(frame, "d");
      if (d < d0 && x <= x0 && x + w >= x0 + w0) return "ancestor";
      if (d >= d0 && x >= x0 && x + w <= x0 + w0) return "inside";
      return "outside";
    }
    function zoomed(how) {
      check(near(rectWidth(target), fullWidth), how + ": the zoomed frame is " + rectWidth(target) + " px, not " + fullWidth);
      check(shown(unzoomButton), how + ": Reset Zoom is not shown");
      frames.forEach(function (frame) {
        var r = relation(frame);
        if (r === "outside") check(!shown(frame), how + ": " + nameOf(frame) + " outside the zoomed frame is still shown");
        if (r === "ancestor") check(shown(frame) && frame.classList.contains("parent") && near(rectWidth(frame), fullWidth),
                                    how + ": ancestor " + nameOf(frame) + " is not shown faded across the width");
        if (r === "inside") check(shown(frame) && near(rectWidth(frame), number(frame, "w") / w0 * fullWidth),
                                  how + ": " + nameOf(frame) + " inside the zoomed frame is not scaled");
      });
      labelsFit(how);
    }
    function unzoomed(how) {
      check(!shown(unzoomButton), how + ": Reset Zoom is still shown");
      check(frames.every(shown) && near(rectWidth(target), widthBefore), how + ": the graph is not back to its full view");
    }
    click(target.querySelector("rect"));
    zoomed("after a click on " + nameOf(target));
    click(unzoomButton);
    unzoomed("after Reset Zoom");
    click(target.querySelector("text"));
    zoomed("after a click on the label of " + nameOf(target));
    window.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape" }));
    unzoomed("after Escape");

    // Search through the button (the prompt answered here), for the deepest frame's exact name.
    var term = "^" + nameOf(deepest).replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + "$";
    var askedFor = null;
    window.prompt = function (message) { askedFor = message; return term; };
    click(searchButton);
    var spans = frames.filter(function (frame) { return nameOf(frame) === nameOf(deepest); })
      .map(function (frame) { return [number(frame, "x"), number(frame, "x") + number(frame, "w")]; })
      .sort(function (a, b) { return a[0] - b[0]; });
    var covered = 0, end = -Infinity;
    spans.forEach(function (span) { if (span[1] > end) { covered += span[1] - Math.max(span[0], end); end = span[1]; } });
    var expected = "Matched: " + (100 * covered / total).toFixed(2) + "%";
    var matches = frames.filter(function (frame) { return frame.classList.contains("match"); });
    check(askedFor !== null, "Search did not ask for a term");
    check(matches.length === spans.length && matches.every(function (frame) { return nameOf(frame) === nameOf(deepest); }),
          "search for " + term + " highlighted " + matches.length + " frames, expected " + spans.length);
    check(document.getElementById("matched").textContent === expected,
          "search shows \"" + document.getElementById("matched").textContent + "\", expected \"" + expected + "\"");
    check(matches.length > 0 && getComputedStyle(matches[0].querySelector("rect")).fill === "rgb(230, 0, 230)",
          "matches are not highlighted");
    check(searchButton.textContent === "Reset Search", "the search button does not offer Reset Search");
    click(searchButton);
    check(frames.every(function (frame) { return !frame.classList.contains("match"); }) &&
          document.getElementById("matched").textContent.trim() === "" && searchButton.textContent === "Search",
          "Reset Search left highlights");

    // Offline: nothing was fetched (scripts, fonts, images, styles).
    var fetched = performance.getEntriesByType("resource").map(function (entry) { return entry.name; });
    check(fetched.length === 0, "fetched " + fetched.join(" "));
    finish(frames.length);
  }

  function finish(frameCount) {
    var line = failures.length === 0
      ? "LOCKSCOPE-SELFTEST PASS checks=" + checks + " frames=" + frameCount
      : "LOCKSCOPE-SELFTEST FAIL " + failures.slice(0, 10).join("; ");
    var text = document.createElementNS("http://www.w3.org/2000/svg", "text");
    text.setAttribute("id", "lockscope-selftest");
    text.textContent = line;
    document.documentElement.appendChild(text);
  }

  window.addEventListener("load", function () {
    setTimeout(function () {
      try { run(); } catch (error) { failures.push("exception: " + error); finish(); }
    }, 0);
  });
})();
