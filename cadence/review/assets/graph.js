/* cadence docs, the lineage section: draws data.graph as laid out in Python (lineage.py,
   layout.py). Every box is a rect with its label inside; an edge runs from the right end of its
   box's row, crosses each column between along its waypoint's line and curves only between
   columns, so it passes through no other box. Views: every model, or folders. Zoom (buttons,
   ctrl+wheel), search highlights, a click focuses a node: its up- and downstream are restacked
   column by column in the same order with the same gaps, the rest is hidden. */
CadenceSite.section("graph", function (sec, data, site) {
  "use strict";
  var g = data.graph, nodes = g.nodes, el = site.el, svgEl = site.svgEl;
  var PAD = 16, PAD_X = 6;

  var bar = el("div", { "class": "graph-bar" });
  var legend = el("div", { id: "legend" });
  g.legend.forEach(function (item) {
    var span = el("span", { "class": "legend-item" });
    var sw = el("span", { "class": "swatch" });
    sw.style.background = item[0];
    span.appendChild(sw);
    span.appendChild(document.createTextNode(item[1]));
    legend.appendChild(span);
  });
  var tools = el("span", { "class": "tools" });
  function button(text, title, fn) {
    var b = el("button", { type: "button", title: title }, text);
    b.addEventListener("click", fn);
    tools.appendChild(b);
    return b;
  }
  var wrap = el("div", { id: "graph-wrap" });
  var svg = svgEl("svg", { id: "graph", xmlns: "http://www.w3.org/2000/svg" });
  wrap.appendChild(svg);
  var focusBox = el("div", { id: "focus" });
  bar.appendChild(legend);
  bar.appendChild(tools);
  sec.appendChild(bar);
  sec.appendChild(wrap);
  sec.appendChild(focusBox);

  var view = null, viewName = "", boxes = [], paths = [], info = [], scale = 1, size = [0, 0];

  // -- geometry ------------------------------------------------------------------------------
  function points(cols, pos, e) {
    var a = pos[e[0]], b = pos[e[1]], mid = view.box_h / 2;
    var pts = [[a[1] + a[3], a[2] + mid], [a[1] + cols[a[0]][1], a[2] + mid]];
    for (var k = a[0] + 1, j = 0; k < b[0]; k += 1, j += 1) {
      pts.push([cols[k][0], e[2][j]], [cols[k][0] + cols[k][1], e[2][j]]);
    }
    pts.push([b[1], b[2] + mid]);
    return pts;
  }
  function pathOf(pts) {
    var d = "M" + pts[0][0] + "," + pts[0][1] + "L" + pts[1][0] + "," + pts[1][1];
    for (var i = 1; i < pts.length - 1; i += 2) {
      var s = pts[i], t = pts[i + 1], mx = (s[0] + t[0]) / 2;
      d += "C" + mx + "," + s[1] + " " + mx + "," + t[1] + " " + t[0] + "," + t[1];
      if (i + 2 < pts.length) { d += "L" + pts[i + 2][0] + "," + pts[i + 2][1]; }
    }
    return d;
  }
  // restack the visible items of each column (boxes and waypoints of visible edges) in their
  // order, with the layout's gaps: returns new positions and routes
  function restack(v, shown, edgeShown) {
    var half = v.box_h / 2, gapBox = v.gaps[0], gapLane = v.gaps[1], gapTrunk = v.gaps[2];
    var perCol = v.columns.map(function () { return {}; });
    v.pos.forEach(function (p, i) { if (shown[i]) { perCol[p[0]]["b" + i] = { y: p[2] + half, box: true }; } });
    v.edges.forEach(function (e, k) {
      if (!edgeShown[k]) { return; }
      var c = v.pos[e[0]][0];
      e[2].forEach(function (y, j) { perCol[c + 1 + j]["w" + y] = { y: y, box: false }; });
    });
    var tallest = 0;
    var moved = perCol.map(function (items) {
      var keys = Object.keys(items).sort(function (a, b) { return items[a].y - items[b].y; });
      var out = {}, y = 0, prev = null;
      keys.forEach(function (key) {
        var it = items[key];
        if (prev === null) { y = it.box ? half : 0; }
        else if (prev.box && it.box) { y += v.box_h + gapBox; }
        else if (prev.box || it.box) { y += half + gapLane; }
        else { y += gapTrunk; }
        out[key] = y;
        prev = it;
      });
      out[""] = prev === null ? 0 : y + (prev.box ? half : 0);  // the column's height
      tallest = Math.max(tallest, out[""]);
      return out;
    });
    moved.forEach(function (out) {  // centre each column on the tallest
      var shift = PAD + Math.round((tallest - out[""]) / 2);
      Object.keys(out).forEach(function (key) { out[key] += shift; });
    });
    // columns keep their order; one with no visible box narrows to its lanes, an empty one goes
    var gap = v.columns.length > 1 ? v.columns[1][0] - v.columns[0][0] - v.columns[0][1] : 0;
    var x = PAD, columns = v.columns.map(function (c, k) {
      var keys = Object.keys(perCol[k]), boxed = keys.some(function (key) { return key[0] === "b"; });
      var col = [x, boxed ? c[1] : 0];
      if (keys.length) { x += col[1] + (boxed ? gap : gap / 3); }
      return col;
    });
    var pos = v.pos.map(function (p, i) {
      return shown[i] ? [p[0], columns[p[0]][0], moved[p[0]]["b" + i] - half, p[3]] : p;
    });
    var edges = v.edges.map(function (e) {
      var c = v.pos[e[0]][0];
      return [e[0], e[1], e[2].map(function (y, j) { var m = moved[c + 1 + j]["w" + y]; return m === undefined ? y : m; })];
    });
    var h = 0, w = 0;
    pos.forEach(function (p, i) { if (shown[i]) { h = Math.max(h, p[2] + v.box_h); w = Math.max(w, p[1] + p[3]); } });
    return { columns: columns, pos: pos, edges: edges, width: w + PAD, height: h + PAD };
  }

  // -- drawing -------------------------------------------------------------------------------
  function nodeInfo(i) {
    var n = nodes[i];
    var title = n.name + " (" + (n.materialized || n.kind) + ")" + (n.cadence ? ": " + n.cadence : "") +
      (n.channels && n.channels.length ? " -> " + n.channels.join(", ") : "") + (n.path ? "\n" + n.path : "");
    return { label: n.label || n.name, band: n.band, kind: n.kind, title: title, name: n.name };
  }
  function groupInfo(i) {
    var grp = g.folders.groups[i];
    var first = nodes[grp.members[0]];
    return {
      label: grp.label, band: grp.band, kind: first.kind === "model" ? "folder" : first.kind,
      title: grp.name + ": " + grp.members.length + " node" + (grp.members.length === 1 ? "" : "s") + " (click: show them)",
      name: first.kind === "channel" ? first.name : grp.name
    };
  }
  function draw(name) {
    viewName = name;
    view = name === "full" ? g.full : g.folders;
    info = view.pos.map(function (p, i) { return name === "full" ? nodeInfo(i) : groupInfo(i); });
    svg.textContent = "";
    svg.setAttribute("data-view", name);
    var edgeLayer = svgEl("g", { "class": "edges" }), nodeLayer = svgEl("g", { "class": "nodes" });
    svg.appendChild(edgeLayer);
    svg.appendChild(nodeLayer);
    paths = view.edges.map(function (e, k) {
      var cls = "edge" + (e[3] ? " suppress" : "");
      var p = svgEl("path", { "class": cls, "data-from": e[0], "data-to": e[1], d: pathOf(points(view.columns, view.pos, e)) });
      if (name === "folders") { p.appendChild(svgEl("title", {}, view.edge_counts[k] + " edge(s)")); }
      else if (e[3]) { p.appendChild(svgEl("title", {}, nodes[e[0]].name + " is suppressed from " + nodes[e[1]].name)); }
      edgeLayer.appendChild(p);
      return p;
    });
    boxes = view.pos.map(function (p, i) {
      var it = info[i];
      var grp = svgEl("g", { "class": "node " + it.kind, "data-name": it.name, "data-index": i });
      grp.appendChild(svgEl("title", {}, it.title));
      grp.appendChild(svgEl("rect", {
        "class": "box", x: p[1], y: p[2], width: p[3], height: view.box_h,
        rx: it.kind === "channel" ? 9 : 3, fill: site.tint(it.band), stroke: it.band < 0 ? "#888" : site.colour(it.band)
      }));
      grp.appendChild(svgEl("text", {
        "class": "label", x: p[1] + PAD_X, y: p[2] + view.box_h / 2 + 4,
        textLength: p[3] - 2 * PAD_X, lengthAdjust: "spacingAndGlyphs"
      }, it.label));
      grp.addEventListener("click", function () {
        if (viewName === "full") { site.emit("focus", i); return; }
        var grpData = g.folders.groups[i];
        switchTo("full");
        if (nodes[grpData.members[0]].kind === "channel") { site.emit("focus", grpData.members[0]); }
        else { site.search(grpData.name + "/"); }
      });
      grp.addEventListener("dblclick", function () {
        var n = viewName === "full" ? nodes[i] : null;
        if (n && n.kind === "model") { window.location.href = site.page(n.name); }
        if (n && n.kind === "channel") { window.location.hash = ""; document.getElementById("channel-" + n.name).scrollIntoView(); }
      });
      nodeLayer.appendChild(grp);
      return grp;
    });
    if (name === "folders" && view.left_out) {
      focusBox.textContent = view.left_out + " edges between folders that read each other both ways are not drawn here.";
    } else { focusBox.textContent = ""; }
    resize(view.width, view.height, true);
  }
  function place(cols, pos, edges) {
    boxes.forEach(function (grp, i) {
      var rect = grp.childNodes[1], text = grp.childNodes[2];
      rect.setAttribute("x", pos[i][1]);
      rect.setAttribute("y", pos[i][2]);
      text.setAttribute("x", pos[i][1] + PAD_X);
      text.setAttribute("y", pos[i][2] + view.box_h / 2 + 4);
    });
    paths.forEach(function (p, k) { p.setAttribute("d", pathOf(points(cols, pos, edges[k]))); });
  }

  // -- zoom ----------------------------------------------------------------------------------
  function resize(w, h, fitWidth) {
    size = [w, h];
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    if (fitWidth) {
      var room = wrap.clientWidth - 2;
      // fill the width: a small graph grows (up to 1.5x), one a little wider shrinks to fit
      scale = room > 0 && w < room * 1.25 ? Math.min(1.5, room / w) : 1;
    }
    zoom(scale);
  }
  function roomHeight() { return Math.round(window.innerHeight * 0.75) - 2; }  // #graph-wrap's max
  function zoom(s) {
    scale = Math.max(0.05, Math.min(4, s));
    svg.setAttribute("width", Math.round(size[0] * scale));
    svg.setAttribute("height", Math.round(size[1] * scale));
  }
  var auto = true;  // the scale follows the window until the user zooms
  button("\u2212", "zoom out", function () { auto = false; zoom(scale / 1.25); });
  button("+", "zoom in", function () { auto = false; zoom(scale * 1.25); });
  button("fit", "the whole graph in view", function () {
    auto = false;
    zoom(Math.min((wrap.clientWidth - 2) / size[0], roomHeight() / size[1]));
  });
  button("1:1", "actual size", function () { auto = false; zoom(1); });
  var toggle = button("by folder", "one box per folder (an overview of a large project)", function () {
    switchTo(viewName === "full" ? "folders" : "full");
  });
  function switchTo(name) {
    if (name === viewName) { return; }
    toggle.textContent = name === "full" ? "by folder" : "every model";
    draw(name);
  }
  wrap.addEventListener("wheel", function (ev) {
    if (!(ev.ctrlKey || ev.metaKey)) { return; }
    ev.preventDefault();
    auto = false;
    var r = wrap.getBoundingClientRect();
    var fx = (wrap.scrollLeft + ev.clientX - r.left) / scale, fy = (wrap.scrollTop + ev.clientY - r.top) / scale;
    zoom(scale * (ev.deltaY < 0 ? 1.15 : 1 / 1.15));
    wrap.scrollLeft = fx * scale - (ev.clientX - r.left);
    wrap.scrollTop = fy * scale - (ev.clientY - r.top);
  }, { passive: false });

  // -- focus and search ----------------------------------------------------------------------
  var up = nodes.map(function () { return []; }), down = nodes.map(function () { return []; });
  g.full.edges.forEach(function (e) { up[e[1]].push(e[0]); down[e[0]].push(e[1]); });
  function walk(start, next) {
    var seen = {}, stack = [start];
    seen[start] = true;
    while (stack.length) {
      next[stack.pop()].forEach(function (o) { if (!seen[o]) { seen[o] = true; stack.push(o); } });
    }
    return seen;
  }
  function focus(i) {
    if (viewName !== "full") { switchTo("full"); }
    var ups = walk(i, up), downs = walk(i, down);
    var shown = nodes.map(function (n, j) { return !!(ups[j] || downs[j]); });
    var edgeShown = view.edges.map(function (e) {
      return !!((ups[e[0]] && ups[e[1]]) || (downs[e[0]] && downs[e[1]]));
    });
    svg.classList.add("focused");
    boxes.forEach(function (b, j) { b.classList.toggle("near", shown[j]); b.classList.toggle("hidden", !shown[j]); b.classList.toggle("current", j === i); });
    paths.forEach(function (p, k) { p.classList.toggle("near", edgeShown[k]); p.classList.toggle("hidden", !edgeShown[k]); });
    var r = restack(view, shown, edgeShown);
    place(r.columns, r.pos, r.edges);
    // the whole lineage in view when it fits at half size or more
    resize(r.width, r.height, false);
    zoom(Math.max(0.6, Math.min(1.5, (wrap.clientWidth - 2) / r.width, roomHeight() / r.height)));
    var n = nodes[i];
    focusBox.textContent = "";
    focusBox.appendChild(document.createTextNode(
      n.name + " (" + n.kind + "): " + (Object.keys(ups).length - 1) + " upstream, " +
      (Object.keys(downs).length - 1) + " downstream" + (n.cadence ? "; " + n.cadence : "") + " "));
    if (n.kind === "model") { focusBox.appendChild(el("a", { href: site.page(n.name) }, "open page")); }
    wrap.scrollLeft = Math.max(0, r.pos[i][1] * scale - wrap.clientWidth / 2);
    wrap.scrollTop = Math.max(0, r.pos[i][2] * scale - roomHeight() / 2);
  }
  function unfocus() {
    svg.classList.remove("focused");
    boxes.forEach(function (b) { b.classList.remove("near", "hidden", "current"); });
    paths.forEach(function (p) { p.classList.remove("near", "hidden"); });
    place(view.columns, view.pos, view.edges);
    resize(view.width, view.height, true);
    focusBox.textContent = "";
  }
  var focused = false;
  function start() {
    if (focused || viewName !== "full") { return; }
    resize(view.width, view.height, true);
    // a tall graph opens at the top of its first columns, not at an empty corner
    var top = view.height;
    view.pos.forEach(function (p) { if (p[0] < 3) { top = Math.min(top, p[2]); } });
    wrap.scrollTop = Math.max(0, (top - PAD) * scale);
  }
  site.on("ready", start);
  window.addEventListener("resize", function () { if (auto && !focused) { resize(size[0], size[1], true); } });
  site.on("focus", function (i) { focused = true; focus(i); });
  site.on("search", function (s) {
    if (viewName !== "full") { switchTo("full"); }
    focused = false;
    unfocus();
    var hit = {};
    s.hits.forEach(function (i) { hit[i] = true; });
    boxes.forEach(function (b, i) { b.classList.toggle("match", !!hit[i]); });
    if (s.hits.length > 1) {
      var p = view.pos[s.hits[0]];
      wrap.scrollLeft = Math.max(0, p[1] * scale - wrap.clientWidth / 2);
      wrap.scrollTop = Math.max(0, p[2] * scale - wrap.clientHeight / 2);
    }
  });
  draw("full");
  if (/[?&]view=folders/.test(window.location.search || "")) { switchTo("folders"); }  // a link to the overview
});
