/* cadence docs, the timeline section: draws data.timeline (timeline.py). For the week holding
   --at, per channel: when it receives (its own cadence) and, per segment feeding it, when the
   segment is rebuilt. A channel whose days all look the same shows one row standing for every
   day; one that differs by weekday shows a row per day. The picker shows the week or one day.
   Each day block carries what it counts: data-days, data-receives, data-rebuilds. */
CadenceSite.section("timeline", function (sec, data, site) {
  "use strict";
  var t = data.timeline, el = site.el, svgEl = site.svgEl;
  var OPEN_UP_TO = 12;  // segment lists longer than this start folded

  function count(p) { return t.patterns[p].length; }
  function clock(m) {
    var h = Math.floor(m / 60), mm = m % 60;
    return h + ":" + (mm < 10 ? "0" : "") + mm;
  }
  function lane(pattern, minutes, cls) {
    var svg = svgEl("svg", { "class": "lane " + cls, viewBox: "0 0 " + minutes + " 10", preserveAspectRatio: "none" });
    var times = t.patterns[pattern];
    var d = times.map(function (m) { return "M" + m + ",0v10"; }).join("");
    if (d) { svg.appendChild(svgEl("path", { d: d, "vector-effect": "non-scaling-stroke" })); }
    var shown = times.length > 24 ? times.length + " times, first " + clock(times[0]) + ", last " + clock(times[times.length - 1])
      : times.map(clock).join(", ") || "none";
    svg.appendChild(svgEl("title", {}, shown));
    return svg;
  }
  function dayName(i) { return t.days[i].weekday + " " + t.days[i].date.slice(5); }

  var intro = el("p", { "class": "note" });
  var first = t.days[0], last = t.days[6];
  intro.textContent = "Week of " + first.weekday + " " + first.date + " to " + last.weekday + " " + last.date +
    " (" + t.timezone + "). A channel receives at its own ticks; its segments are rebuilt at theirs " +
    "and whenever a faster consumer pulls them in. A channel whose days differ (a weekday cadence, a DST day) " +
    "shows a row per day.";
  var pick = el("select", { id: "day-pick", "aria-label": "day shown" });
  pick.appendChild(el("option", { value: "" }, "the whole week"));
  t.days.forEach(function (d, i) { pick.appendChild(el("option", { value: String(i) }, dayName(i) + (d.date === t.at ? " (--at)" : ""))); });
  var head = sec.querySelector("h2");
  head.appendChild(document.createTextNode(" "));
  head.appendChild(pick);
  sec.appendChild(intro);
  var box = el("div", { id: "timeline" });
  sec.appendChild(box);

  function scale() {
    var row = el("div", { "class": "row hours" });
    row.appendChild(el("span", {}, ""));
    var s = el("span", { "class": "scale" });
    [0, 6, 12, 18, 24].forEach(function (h) { s.appendChild(el("span", {}, h + ":00")); });
    row.appendChild(s);
    row.appendChild(el("span", {}, "times"));
    return row;
  }

  var blocks = [];  // [element, day indexes it stands for]
  t.channels.forEach(function (ch) {
    var card = el("div", { "class": "channel", id: "channel-" + ch.name, "data-channel": ch.name });
    var week = ch.receives.reduce(function (s, p) { return s + count(p); }, 0);
    card.appendChild(el("h3", {}, ch.name + " \u2014 " + ch.cadence + (ch.kind ? " (" + ch.kind + ")" : "") +
      " \u2014 receives " + week + " times this week, " + ch.segments.length + " segment" + (ch.segments.length === 1 ? "" : "s")));
    if (ch.description) { card.appendChild(el("p", { "class": "note" }, ch.description)); }
    card.appendChild(scale());
    var groups = ch.varies ? [0, 1, 2, 3, 4, 5, 6].map(function (i) { return [i]; }) : [[0, 1, 2, 3, 4, 5, 6]];
    groups.forEach(function (days) {
      var d0 = days[0], minutes = t.days[d0].minutes;
      var rebuilds = ch.segments.reduce(function (s, seg) { return s + count(seg.builds[d0]); }, 0);
      var block = el("div", {
        "class": "day", "data-channel": ch.name,
        "data-days": days.map(function (i) { return t.days[i].date; }).join(" "),
        "data-receives": count(ch.receives[d0]), "data-rebuilds": rebuilds
      });
      var row = el("div", { "class": "row receive" });
      row.appendChild(el("span", { "class": "label" }, days.length > 1 ? "every day" : dayName(d0) + (minutes !== 1440 ? " (" + minutes / 60 + " h)" : "")));
      row.appendChild(lane(ch.receives[d0], minutes, "receive"));
      row.appendChild(el("span", { "class": "count" }, count(ch.receives[d0]) + " \u00d7"));
      block.appendChild(row);
      if (ch.segments.length) {
        var fold = el("details", { "class": "segments" });
        if (ch.segments.length <= OPEN_UP_TO && !ch.varies) { fold.open = true; }
        fold.appendChild(el("summary", {}, ch.segments.length + " segment" + (ch.segments.length === 1 ? "" : "s") +
          ", " + rebuilds + " rebuilds" + (days.length > 1 ? " a day" : "")));
        ch.segments.forEach(function (seg) {
          var r = el("div", { "class": "row segment", "data-segment": seg.name, "data-refreshes": count(seg.builds[d0]) });
          r.appendChild(el("a", { "class": "label", href: site.page(seg.name) }, seg.name));
          r.appendChild(lane(seg.builds[d0], minutes, "build"));
          r.appendChild(el("span", { "class": "count" }, String(count(seg.builds[d0]))));
          fold.appendChild(r);
        });
        block.appendChild(fold);
      } else {
        block.appendChild(el("p", { "class": "note" }, "no segment feeds this channel"));
      }
      card.appendChild(block);
      blocks.push([block, days]);
    });
    box.appendChild(card);
  });

  function show() {
    var day = pick.value === "" ? -1 : Number(pick.value);
    blocks.forEach(function (b) {
      var on = day < 0 || b[1].indexOf(day) >= 0;
      b[0].classList.toggle("hidden", !on);
      var fold = b[0].querySelector("details");
      if (fold && day >= 0 && fold.querySelectorAll(".row").length <= OPEN_UP_TO) { fold.open = true; }
    });
  }
  pick.addEventListener("change", show);
  // index.html?day=YYYY-MM-DD opens on that day of the week
  var wanted = /[?&]day=(\d{4}-\d{2}-\d{2})/.exec(window.location.search || "");
  t.days.forEach(function (d, i) { if (wanted && d.date === wanted[1]) { pick.value = String(i); show(); } });
});
