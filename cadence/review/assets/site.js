/* cadence docs: the page's frame. No network, no libraries. data.js holds everything
   (window.CADENCE_DATA, laid out in Python); each <section data-section="NAME"> is drawn by the
   script that registered NAME with CadenceSite.section (graph.js, timeline.js, models.js, ...),
   in page order, once the document is parsed. Sections talk through events: "search" (the
   header's box: {query, hits}) and "focus" (a node index of data.graph.nodes). */
(function () {
  "use strict";
  var data = window.CADENCE_DATA;
  var renderers = {};
  var listeners = {};
  var SVG = "http://www.w3.org/2000/svg";

  function set(node, attrs) {
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }
  var site = {
    data: data,
    el: function (tag, attrs, text) {
      var node = set(document.createElement(tag), attrs);
      if (text !== undefined) { node.textContent = text; }
      return node;
    },
    svgEl: function (tag, attrs, text) {
      var node = set(document.createElementNS(SVG, tag), attrs);
      if (text !== undefined) { node.textContent = text; }
      return node;
    },
    section: function (name, draw) { renderers[name] = draw; },
    on: function (event, fn) { (listeners[event] = listeners[event] || []).push(fn); },
    emit: function (event, arg) { (listeners[event] || []).forEach(function (fn) { fn(arg); }); },
    page: function (name) { return "models/" + encodeURIComponent(name) + ".html"; },
    // a legend entry's colour, and the pale tint boxes are filled with
    colour: function (band) { return data.graph.legend[band < 0 ? data.graph.legend.length - 1 : band][0]; },
    tint: function (band) {
      var hex = site.colour(band), out = "#";
      for (var i = 1; i < 7; i += 2) {
        var c = parseInt(hex.slice(i, i + 2), 16);
        out += ("0" + Math.round(c + (255 - c) * 0.72).toString(16)).slice(-2);
      }
      return out;
    }
  };
  window.CadenceSite = site;

  function searchText(n) {
    return [n.name, n.kind, n.path || "", (n.channels || []).join(" "), n.cadence || ""].join(" ").toLowerCase();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("section[data-section]").forEach(function (sec) {
      var draw = renderers[sec.getAttribute("data-section")];
      if (draw) { draw(sec, data, site); }
    });
    site.emit("ready");  // every section is drawn: sizes are final
    var nodes = data.graph.nodes;
    var search = document.getElementById("search");
    var status = document.getElementById("status");
    var texts = nodes.map(searchText);
    function applySearch() {
      var q = search.value.trim().toLowerCase();
      var hits = [];
      if (q) { texts.forEach(function (t, i) { if (t.indexOf(q) >= 0) { hits.push(i); } }); }
      site.emit("search", { query: q, hits: hits });
      status.textContent = q ? hits.length + " match" + (hits.length === 1 ? "" : "es") : nodes.length + " nodes";
      if (hits.length === 1) { site.emit("focus", hits[0]); }
    }
    site.search = function (text) { search.value = text; applySearch(); };
    search.addEventListener("input", applySearch);
    document.getElementById("clear").addEventListener("click", function () { site.search(""); });
    // index.html#NAME focuses a model (or a channel); index.html?q=TEXT searches
    var query = /[?&]q=([^&]*)/.exec(window.location.search || "");
    if (query) { site.search(decodeURIComponent(query[1].replace(/\+/g, " "))); }
    else { status.textContent = nodes.length + " nodes"; }
    var wanted = decodeURIComponent((window.location.hash || "").slice(1));
    if (wanted) {
      var found = -1;
      nodes.forEach(function (n, i) { if (n.name === wanted && (found < 0 || n.kind === "model")) { found = i; } });
      if (found >= 0) { site.emit("focus", found); }
    }
    document.body.setAttribute("data-ready-ms", String(Math.round(performance.now())));
  });
})();
