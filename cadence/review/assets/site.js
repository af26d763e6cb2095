/* cadence docs: draws what data.js holds (window.CADENCE_DATA). No network, no libraries:
   the layout was computed in Python; this script draws the lineage graph, the refresh
   timelines and the model list, and wires search and focus. */
(function () {
  "use strict";
  var data = window.CADENCE_DATA;
  var SVG = "http://www.w3.org/2000/svg";
  var nodes = data.nodes, edges = data.edges;
  var parents = nodes.map(function () { return []; });
  var children = nodes.map(function () { return []; });
  edges.forEach(function (e) { parents[e[1]].push(e[0]); children[e[0]].push(e[1]); });
  var byName = {};
  nodes.forEach(function (n, i) { byName[n.name] = i; });

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function svgEl(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  // -- legend and graph --------------------------------------------------------------------
  var legend = document.getElementById("legend");
  data.legend.forEach(function (item) {
    var span = el("span", { "class": "legend-item" });
    var sw = el("span", { "class": "swatch" });
    sw.style.background = item[0];
    span.appendChild(sw);
    span.appendChild(document.createTextNode(item[1]));
    legend.appendChild(span);
  });

  var graph = document.getElementById("graph");
  var width = 0, height = 0;
  nodes.forEach(function (n) { width = Math.max(width, n.x + 240); height = Math.max(height, n.y + 30); });
  graph.setAttribute("width", width);
  graph.setAttribute("height", height);
  graph.setAttribute("viewBox", "0 0 " + width + " " + height);
  var edgeLayer = svgEl("g", { "class": "edges" });
  var nodeLayer = svgEl("g", { "class": "nodes" });
  graph.appendChild(edgeLayer);
  graph.appendChild(nodeLayer);
  function curve(a, b) {
    var mid = (a.x + b.x) / 2;
    return "M" + a.x + "," + a.y + " C" + mid + "," + a.y + " " + mid + "," + b.y + " " + b.x + "," + b.y;
  }
  var edgeEls = edges.map(function (e) {
    var path = svgEl("path", { "class": "edge", d: curve(nodes[e[0]], nodes[e[1]]) });
    edgeLayer.appendChild(path);
    return path;
  });
  // positions drawn now: the Python layout, or a compact one of a focused model's lineage
  function place(pos) {
    nodeEls.forEach(function (g, i) { g.setAttribute("transform", "translate(" + pos[i].x + "," + pos[i].y + ")"); });
    edgeEls.forEach(function (p, k) { p.setAttribute("d", curve(pos[edges[k][0]], pos[edges[k][1]])); });
    var w = 0, h = 0;
    pos.forEach(function (q, i) {
      if (!nodeEls[i].classList.contains("hidden")) { w = Math.max(w, q.x + 240); h = Math.max(h, q.y + 30); }
    });
    graph.setAttribute("width", w);
    graph.setAttribute("height", h);
    graph.setAttribute("viewBox", "0 0 " + w + " " + h);
  }
  var nodeEls = nodes.map(function (n, i) {
    var g = svgEl("g", { "class": "node", "data-name": n.name, transform: "translate(" + n.x + "," + n.y + ")" });
    var title = svgEl("title", {});
    title.textContent = n.name + " (" + n.materialized + "): " + n.cadence +
      (n.channels.length ? " -> " + n.channels.join(", ") : "");
    g.appendChild(title);
    g.appendChild(svgEl("circle", { r: 6, fill: n.color }));
    var label = svgEl("text", { x: 10, y: 0 });
    label.textContent = n.name;
    g.appendChild(label);
    g.addEventListener("click", function () { focus(i); });
    g.addEventListener("dblclick", function () { if (n.page) { window.location.href = n.page; } });
    nodeLayer.appendChild(g);
    return g;
  });

  function walk(start, next) {
    var seen = {}, stack = [start];
    seen[start] = true;
    while (stack.length) {
      var cur = stack.pop();
      next[cur].forEach(function (o) { if (!seen[o]) { seen[o] = true; stack.push(o); } });
    }
    return seen;
  }

  var focusBox = document.getElementById("focus");
  function focus(i) {
    var up = walk(i, parents), down = walk(i, children);
    graph.classList.add("focused");
    var rowsAt = {};
    var pos = nodes.map(function (n, j) {
      if (!(up[j] || down[j])) { return { x: n.x, y: n.y }; }
      rowsAt[n.x] = (rowsAt[n.x] || 0) + 1;  // stack the lineage compactly, layer by layer
      return { x: n.x, y: 20 + (rowsAt[n.x] - 1) * 28 };
    });
    nodeEls.forEach(function (g, j) {
      var near = !!(up[j] || down[j]);
      g.classList.toggle("near", near);
      g.classList.toggle("hidden", !near);
    });
    edgeEls.forEach(function (p, k) {
      var e = edges[k];
      var near = !!((up[e[0]] && up[e[1]]) || (down[e[0]] && down[e[1]]));
      p.classList.toggle("near", near);
      p.classList.toggle("hidden", !near);
    });
    place(pos);
    var n = nodes[i];
    focusBox.textContent = "";
    focusBox.appendChild(document.createTextNode(
      n.name + ": " + (Object.keys(up).length - 1) + " upstream, " +
      (Object.keys(down).length - 1) + " downstream; " + n.cadence + " "));
    if (n.page) { focusBox.appendChild(el("a", { href: n.page }, "open page")); }
    var wrap = document.getElementById("graph-wrap");
    wrap.scrollLeft = Math.max(0, pos[i].x - wrap.clientWidth / 2);
    wrap.scrollTop = Math.max(0, pos[i].y - wrap.clientHeight / 2);
  }
  function unfocus() {
    graph.classList.remove("focused");
    nodeEls.forEach(function (g) { g.classList.remove("near", "match", "hidden"); });
    edgeEls.forEach(function (p) { p.classList.remove("near", "hidden"); });
    place(nodes);
    focusBox.textContent = "";
    rows.forEach(function (r) { r.classList.remove("hidden"); });
  }

  // -- timeline ----------------------------------------------------------------------------
  document.getElementById("day").textContent = data.day + " (" + data.timezone + ")";
  var timeline = document.getElementById("timeline");
  var total = data.day_minutes;
  data.channels.forEach(function (ch) {
    var box = el("div", { "class": "channel", "data-channel": ch.name });
    box.appendChild(el("h3", {}, ch.name + " - " + ch.cadence + " - " + ch.refreshes + " refreshes"));
    var hours = el("div", { "class": "hours" });
    hours.appendChild(el("span", {}, ""));
    var scale = el("span", { "class": "scale" });
    [0, 6, 12, 18, 24].forEach(function (h) { scale.appendChild(el("span", {}, h + ":00")); });
    hours.appendChild(scale);
    hours.appendChild(el("span", {}, "builds"));
    box.appendChild(hours);
    var drawn = 0;
    ch.segments.forEach(function (seg) {
      var row = el("div", { "class": "row", "data-segment": seg.name });
      var label = el("a", { "class": "label", href: "models/" + seg.name + ".html" }, seg.name);
      row.appendChild(label);
      var svg = svgEl("svg", { viewBox: "0 0 " + total + " 10", preserveAspectRatio: "none" });
      var d = seg.times.map(function (m) { return "M" + m + ",0v10"; }).join("");
      if (d) { svg.appendChild(svgEl("path", { d: d, "vector-effect": "non-scaling-stroke" })); }
      var marks = seg.times.length;
      drawn += marks;
      row.setAttribute("data-refreshes", marks);
      row.appendChild(svg);
      row.appendChild(el("span", {}, String(marks)));
      box.appendChild(row);
    });
    if (!ch.segments.length) { box.appendChild(el("p", {}, "no segment feeds this channel")); }
    box.setAttribute("data-refreshes", drawn);
    timeline.appendChild(box);
  });

  // -- model list and search ----------------------------------------------------------------
  var tbody = document.querySelector("#models tbody");
  var rows = [];
  nodes.forEach(function (n, i) {
    if (n.materialized === "seed") { return; }
    var tr = el("tr", { "class": "model-row", "data-name": n.name });
    var td = el("td", {});
    td.appendChild(el("a", { href: n.page }, n.name));
    tr.appendChild(td);
    tr.appendChild(el("td", {}, n.materialized));
    tr.appendChild(el("td", {}, n.cadence));
    tr.appendChild(el("td", {}, n.channels.join(", ")));
    tr.addEventListener("click", function () { focus(i); });
    tbody.appendChild(tr);
    rows.push(tr);
  });

  var search = document.getElementById("search");
  var status = document.getElementById("status");
  function applySearch() {
    var q = search.value.trim().toLowerCase();
    if (!q) { unfocus(); status.textContent = nodes.length + " nodes"; return; }
    var hits = 0, first = -1;
    nodes.forEach(function (n, i) {
      var text = (n.name + " " + n.path + " " + n.channels.join(" ") + " " + n.cadence).toLowerCase();
      var hit = text.indexOf(q) >= 0;
      nodeEls[i].classList.toggle("match", hit);
      if (hit) { hits += 1; if (first < 0) { first = i; } }
    });
    rows.forEach(function (r) {
      r.classList.toggle("hidden", r.getAttribute("data-name").toLowerCase().indexOf(q) < 0);
    });
    status.textContent = hits + " match" + (hits === 1 ? "" : "es");
    if (hits === 1) { focus(first); }
  }
  search.addEventListener("input", applySearch);
  document.getElementById("clear").addEventListener("click", function () { search.value = ""; applySearch(); });
  // index.html#MODEL focuses a model; index.html?q=TEXT searches (links and tests use both)
  var wanted = decodeURIComponent((window.location.hash || "").slice(1));
  var query = /[?&]q=([^&]*)/.exec(window.location.search || "");
  if (query) { search.value = decodeURIComponent(query[1].replace(/\+/g, " ")); applySearch(); }
  if (wanted && byName[wanted] !== undefined) { focus(byName[wanted]); }
  if (!query) { status.textContent = nodes.length + " nodes"; }
  document.body.setAttribute("data-ready-ms", String(Math.round(performance.now())));
})();
