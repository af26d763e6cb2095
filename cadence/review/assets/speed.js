/* cadence docs, the speed section: draws data.speed (speed.py). Per channel: its objective and
   lag, then a chart of cost against p90 reach delay (log scale) across candidate cadences, each
   a point (filled when it meets the objective, ringed when recommended), the current cadence
   marked "now", the objective's warn_after a dashed line; and the same figures as a table.
   Everything is laid out in Python: this only draws. */
CadenceSite.section("speed", function (sec, data, site) {
  "use strict";
  var s = data.speed, el = site.el, svgEl = site.svgEl;

  function span(seconds) {
    if (seconds === null || seconds === undefined) { return "-"; }
    if (seconds < 90) { return Math.round(seconds) + " s"; }
    if (seconds < 5400) { return (seconds / 60).toFixed(1) + " min"; }
    if (seconds < 129600) { return (seconds / 3600).toFixed(1) + " h"; }
    return (seconds / 86400).toFixed(1) + " d";
  }
  function money(value) {
    if (value === null || value === undefined) { return "-"; }
    return Math.abs(value) >= 1 || value === 0 ? value.toFixed(2) : value.toFixed(4);
  }

  var intro = el("p", { "class": "note" });
  intro.textContent = s.channels.length
    ? "What each channel's speed buys and costs, from recorded history since " + s.since +
      " (cadence advise): the p90 delay from when a member qualified (event_time, else the publish " +
      "that found it) to the delivery that reached it, and the project's cost (" + s.unit +
      ") were the channel at another cadence."
    : (s.note || "no history");
  sec.appendChild(intro);

  s.channels.forEach(function (c) {
    var box = el("div", { "class": "speed-channel", "data-channel": c.name });
    box.appendChild(el("h3", {}, c.name + " (" + c.cadence + ")"));
    var o = c.objective;
    var objective = o.warn_after_s === null ? "no objective (no ticks)"
      : "objective: warn after " + span(o.warn_after_s) + ", error after " + span(o.error_after_s) +
        (o.declared ? " (declared)" : " (default: its 2nd and 4th latest tick)");
    var lag = c.lag_s === null ? "lag: none yet (never brought up to date)"
      : "lag: " + span(c.lag_s) + " (" + c.state + ")";
    box.appendChild(el("p", { "class": "objective" }, objective + "; " + lag));
    box.appendChild(el("p", { "class": "observed" }, c.entered + " entered, " + c.missed + " missed, " +
      c.pending + " pending; p90 reach delay now " + span(c.p90_s)));
    if (c.chart) { box.appendChild(draw(c.chart, s.unit)); }
    else { box.appendChild(el("p", { "class": "note" }, "no chart: no candidate has both a delay and a cost yet")); }
    var table = el("table", { "class": "speed-table" });
    var head = el("tr", {});
    ["cadence", "p90 delay", s.unit, "objective"].forEach(function (h) { head.appendChild(el("th", {}, h)); });
    table.appendChild(head);
    c.candidates.forEach(function (k) {
      var tr = el("tr", { "data-cadence": k.cadence });
      tr.appendChild(el("td", {}, k.cadence + (k.cadence === c.cadence ? " (now)" : "")));
      tr.appendChild(el("td", {}, span(k.p90_s)));
      tr.appendChild(el("td", {}, money(k.cost)));
      tr.appendChild(el("td", {}, k.meets ? "meets" : "misses"));
      table.appendChild(tr);
    });
    box.appendChild(table);
    box.appendChild(el("p", { "class": "recommended" }, "recommended: " + (c.recommended || "none")));
    if (c.note) { box.appendChild(el("p", { "class": "note" }, c.note)); }
    sec.appendChild(box);
  });

  function draw(ch, unit) {
    var p = ch.plot;
    var svg = svgEl("svg", { "class": "speed-chart", width: ch.width, height: ch.height,
      viewBox: "0 0 " + ch.width + " " + ch.height, role: "img" });
    svg.appendChild(svgEl("title", {}, "cost (" + unit + ") against p90 reach delay"));
    ch.y_ticks.forEach(function (t) {
      svg.appendChild(svgEl("line", { "class": "grid", x1: p.x0, x2: p.x1, y1: t.y, y2: t.y }));
      svg.appendChild(svgEl("text", { "class": "tick", x: p.x0 - 6, y: t.y + 4, "text-anchor": "end" }, t.label));
    });
    ch.x_ticks.forEach(function (t) {
      svg.appendChild(svgEl("line", { "class": "grid", x1: t.x, x2: t.x, y1: p.y0, y2: p.y1 }));
      svg.appendChild(svgEl("text", { "class": "tick", x: t.x, y: p.y0 + 16, "text-anchor": "middle" }, t.label));
    });
    svg.appendChild(svgEl("path", { "class": "axis", d: "M" + p.x0 + "," + p.y1 + "V" + p.y0 + "H" + p.x1 }));
    svg.appendChild(svgEl("text", { "class": "axis-label", x: (p.x0 + p.x1) / 2, y: ch.height - 6, "text-anchor": "middle" }, ch.x_label));
    svg.appendChild(svgEl("text", { "class": "axis-label", x: 12, y: (p.y0 + p.y1) / 2, "text-anchor": "middle",
      transform: "rotate(-90 12 " + (p.y0 + p.y1) / 2 + ")" }, unit));
    if (ch.objective) {
      svg.appendChild(svgEl("line", { "class": "objective", x1: ch.objective.x, x2: ch.objective.x, y1: p.y0, y2: p.y1 }));
      svg.appendChild(svgEl("text", { "class": "tick", x: ch.objective.x + 4, y: p.y1 + 10 }, ch.objective.label));
    }
    ch.points.forEach(function (pt) {
      var g = svgEl("g", { "class": "candidate" + (pt.meets ? " meets" : "") + (pt.recommended ? " recommended" : ""),
        "data-cadence": pt.label });
      g.appendChild(svgEl("circle", { cx: pt.x, cy: pt.y, r: pt.recommended ? 7 : 5 }));
      g.appendChild(svgEl("text", { x: pt.x + 8, y: pt.y - 6 }, pt.label));
      svg.appendChild(g);
    });
    if (ch.current) {
      var c = ch.current, g = svgEl("g", { "class": "current", "data-cadence": c.label });
      g.appendChild(svgEl("path", { d: "M" + c.x + "," + (c.y - 8) + "l8,8l-8,8l-8,-8z" }));
      g.appendChild(svgEl("text", { x: c.x + 10, y: c.y + 16 }, c.label));
      svg.appendChild(g);
    }
    return svg;
  }
});
