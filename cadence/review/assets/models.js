/* cadence docs, the models section: one row per model (data.graph.nodes of kind "model"),
   each linking to its page; the header's search filters the rows, a click focuses the model in
   the lineage graph. */
CadenceSite.section("models", function (sec, data, site) {
  "use strict";
  var el = site.el;
  var table = el("table", { id: "models" });
  var headRow = el("tr", {});
  ["model", "materialized", "cadence", "channels", "folder"].forEach(function (h) { headRow.appendChild(el("th", {}, h)); });
  var thead = el("thead", {});
  thead.appendChild(headRow);
  table.appendChild(thead);
  var tbody = el("tbody", {});
  table.appendChild(tbody);
  sec.appendChild(table);
  var rows = {};
  data.graph.nodes.forEach(function (n, i) {
    if (n.kind !== "model") { return; }
    var tr = el("tr", { "class": "model-row", "data-name": n.name });
    var td = el("td", {});
    td.appendChild(el("a", { href: site.page(n.name) }, n.name));
    tr.appendChild(td);
    tr.appendChild(el("td", {}, n.materialized));
    tr.appendChild(el("td", {}, n.cadence));
    tr.appendChild(el("td", {}, n.channels.join(", ")));
    tr.appendChild(el("td", {}, n.folder));
    tr.addEventListener("click", function (ev) {
      if (ev.target.tagName === "A") { return; }
      site.emit("focus", i);
      document.getElementById("graph-section").scrollIntoView();
    });
    tbody.appendChild(tr);
    rows[i] = tr;
  });
  site.on("search", function (s) {
    var hit = {};
    s.hits.forEach(function (i) { hit[i] = true; });
    Object.keys(rows).forEach(function (i) { rows[i].classList.toggle("hidden", !!s.query && !hit[i]); });
  });
});
