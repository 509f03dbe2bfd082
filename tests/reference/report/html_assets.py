"""The stylesheet and the script of the HTML report, kept apart from the Python that fills the page.

Both are inlined into every report (it must open from a file with no request at all). The script is
allowed by its SHA-256 hash in the page's Content-Security-Policy, so a script smuggled into the page
by any escaping mistake would still not run. It never builds HTML from strings: rows are made with
``createElement`` and ``textContent``, so event text stays text.
"""

CSS = """
:root{--bg:#f4f6f9;--card:#fff;--text:#1c2230;--muted:#5b6576;--border:#dde2e9;--ok:#1a7f37;
--err:#c92a2a;--warn:#b35c00;--info:#55606f;--neutral:#1c6dd0;--pass:#1a7f37;--fail:#b42318;
--mono:ui-monospace,SFMono-Regular,"SF Mono",Menlo,Consolas,"Liberation Mono",monospace}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--text);line-height:1.45;font-size:15px;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",sans-serif}
.wrap{max-width:1240px;margin:0 auto;padding:0 20px 32px}
h1,h2,h3{line-height:1.25;margin:0}
h2{font-size:19px;margin:0 0 12px}
h3{font-size:15px}
a{color:var(--neutral)}
.mono,.id{font-family:var(--mono);font-size:13px}
.id{white-space:nowrap}
.muted{color:var(--muted)}
.small{font-size:12.5px}
.banner{color:#fff;padding:22px 0 20px}
.banner.fail{background:var(--fail)}
.banner.pass{background:var(--pass)}
.banner .wrap{padding-bottom:0}
.banner .tool{opacity:.85;font-size:13px;letter-spacing:.04em;text-transform:uppercase}
.banner h1{font-size:34px;margin:4px 0 6px;letter-spacing:.02em}
.banner .proof{font-size:16px;margin:0 0 12px;max-width:980px}
.chips{display:flex;flex-wrap:wrap;gap:8px;margin:0;padding:0;list-style:none}
.chips li{background:rgba(255,255,255,.16);border:1px solid rgba(255,255,255,.35);border-radius:999px;
padding:3px 11px;font-size:13px}
.chips li.alert{background:#fff;color:var(--fail);font-weight:600;border-color:#fff}
nav.toc{background:var(--card);border-bottom:1px solid var(--border);position:sticky;top:0;z-index:5}
nav.toc .wrap{display:flex;flex-wrap:wrap;gap:4px 18px;padding-top:9px;padding-bottom:9px}
nav.toc a{text-decoration:none;font-size:14px;font-weight:500}
section.card{background:var(--card);border:1px solid var(--border);border-radius:10px;padding:18px 20px;
margin:18px 0;box-shadow:0 1px 2px rgba(16,24,40,.04)}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--border);vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600;
white-space:nowrap;background:#f8f9fb}
.scroll{overflow-x:auto}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.sev{display:inline-block;border-radius:4px;padding:1px 7px;font-size:12px;font-weight:600;
text-transform:uppercase;letter-spacing:.03em;white-space:nowrap}
.sev-error{background:#fde8e8;color:var(--err)}
.sev-warning{background:#fff3db;color:var(--warn)}
.sev-info{background:#eef1f5;color:var(--info)}
.sev-ok{background:#e3f4e8;color:var(--ok)}
.sev-neutral{background:#e4eefb;color:var(--neutral)}
.pill{display:inline-block;border-radius:999px;padding:1px 9px;font-size:12.5px;font-weight:600;white-space:nowrap}
.code{font-family:var(--mono);font-weight:600}
.problem{border-left:4px solid var(--border);padding:10px 14px;margin:0 0 12px;background:#fbfcfd;border-radius:0 6px 6px 0}
.problem.error{border-left-color:var(--err)}
.problem.warning{border-left-color:var(--warn)}
.problem .head{display:flex;flex-wrap:wrap;align-items:baseline;gap:8px}
.problem .count{font-weight:700}
.problem .hint{margin:4px 0 6px;color:var(--muted)}
.problem ul{margin:4px 0 0;padding-left:18px}
.problem li{font-size:13.5px;overflow-wrap:anywhere}
.problem .more{color:var(--muted);list-style:none;margin-left:-18px}
button,select,input{font:inherit;font-size:14px}
button{border:1px solid var(--border);background:#fff;border-radius:6px;padding:3px 10px;cursor:pointer}
button:hover:not(:disabled){border-color:var(--neutral);color:var(--neutral)}
button:disabled{opacity:.45;cursor:default}
.good{color:var(--ok);font-weight:600}
.bad{color:var(--err);font-weight:600}
.conv{border-top:1px solid var(--border);padding-top:14px;margin-top:14px}
.conv:first-of-type{border-top:0;margin-top:0;padding-top:0}
.conv .head{display:flex;flex-wrap:wrap;align-items:center;gap:8px 12px;margin-bottom:6px}
.counts{display:flex;flex-wrap:wrap;gap:6px;margin:6px 0 10px}
.timeline{display:flex;align-items:flex-end;height:36px;margin:8px 0 2px;border-bottom:2px solid #c9d0da}
.timeline.sparse .cell{margin-right:2px}
.cell{flex:1 1 0;min-width:1px;height:12px;background:#b9dfc4;border-radius:2px 2px 0 0}
.cell.marked{height:34px}
.axis{display:flex;justify-content:space-between;gap:12px;font-size:12px;color:var(--muted);margin-bottom:6px}
.m-signature{background:repeating-linear-gradient(135deg,#9b1c1c 0 3px,#e03131 3px 6px)}
.m-gap{background:#e03131}
.m-fork{background:#f76707}
.m-conflict{background:#c2255c}
.m-cycle{background:#7048e8}
.m-replay{background:#212529}
.m-other-error{background:#ff8787}
.m-duplicate{background:#f59f00}
.m-non_monotonic{background:#fcc419}
.m-other-warning{background:#ffe066}
.m-start{background:#1c7ed6}
.m-out_of_band{background:#74c0fc}
.m-duplicate-info{background:#ffe8a1}
.cell.m-duplicate-info,.cell.m-out_of_band,.cell.m-start{height:24px}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;font-size:12.5px;color:var(--muted);margin:0 0 14px;padding:0;list-style:none}
.legend li{display:flex;align-items:center;gap:6px}
.swatch{display:inline-block;width:14px;height:14px;border-radius:3px;flex:none}
.swatch.cell{height:14px;flex:none}
.marked-list{margin:6px 0 0;padding:0;list-style:none;font-size:13px}
.marked-list li{display:flex;gap:8px;align-items:center;padding:2px 0;overflow-wrap:anywhere}
.keybar{position:relative;height:10px;background:#eef1f5;border-radius:5px;min-width:120px}
.keybar span{position:absolute;top:0;bottom:0;border-radius:5px;background:#4c8bf5;min-width:4px}
.keybar span.failed{background:var(--err)}
.callout{border-radius:8px;padding:10px 14px;margin:0 0 12px}
.callout.error{background:#fde8e8;color:#7a1212}
.callout.ok{background:#e3f4e8;color:#0f4d22}
.controls{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:center;margin:0 0 10px}
.controls label{font-size:13px;color:var(--muted);display:flex;gap:6px;align-items:center}
.controls input[type=search]{min-width:240px;padding:4px 8px;border:1px solid var(--border);border-radius:6px}
.controls select{padding:3px 6px;border:1px solid var(--border);border-radius:6px;background:#fff}
.pager{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin:10px 0 0}
.pager .status{margin-right:auto;font-size:13px;color:var(--muted)}
#xv-events tbody tr.row-error td:first-child{box-shadow:inset 4px 0 0 var(--err)}
#xv-events tbody tr.row-warning td:first-child{box-shadow:inset 4px 0 0 var(--warn)}
#xv-events td{font-size:13.5px;padding:6px 8px}
#xv-events th{padding:6px 8px}
#xv-events td .detail.clip{max-width:150px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
#xv-events td .detail{display:block;color:var(--muted);font-size:12px;overflow-wrap:anywhere;max-width:260px}
#xv-events td .finding{display:block;overflow-wrap:anywhere;max-width:320px}
.finding.error{color:var(--err)}
.finding.warning{color:var(--warn)}
footer{color:var(--muted);font-size:13px;padding:8px 0 24px}
footer .wrap{display:flex;flex-wrap:wrap;gap:6px 22px}
@media (max-width:700px){.banner h1{font-size:27px}section.card{padding:14px 12px}th,td{padding:5px 6px}
.controls input[type=search]{min-width:0;width:100%}}
@media print{nav.toc,.controls,.pager,button{display:none}section.card{break-inside:avoid;box-shadow:none}}
"""

# Field names of one event row in the embedded JSON (``fields``); the script maps names to positions,
# so Python and JavaScript can never disagree about the order.
EVENT_FIELDS = ("conv", "index", "seq", "prev", "msg", "sender", "kver", "time", "type", "sig", "sigd",
                "sigsev", "chain", "chaind", "chainsev", "findings", "worst")

JS = """
(function () {
  "use strict";
  var source = document.getElementById("xv-data");
  var table = document.getElementById("xv-events");
  if (!source || !table) { return; }
  var data = JSON.parse(source.textContent);
  var rows = data.events, convs = data.conversations, F = {};
  data.fields.forEach(function (name, i) { F[name] = i; });
  var tbody = table.tBodies[0];
  var statusSel = document.getElementById("xv-status");
  var convSel = document.getElementById("xv-conv");
  var search = document.getElementById("xv-search");
  var sizeSel = document.getElementById("xv-size");
  var info = document.getElementById("xv-page-info");
  var buttons = {first: "xv-first", prev: "xv-prev", next: "xv-next", last: "xv-last"};
  Object.keys(buttons).forEach(function (k) { buttons[k] = document.getElementById(buttons[k]); });
  var showConv = convs.length > 1;
  var matches = [], page = 0, haystacks = null;

  function hasCode(r, code) {
    if (r[F.sig] === code || r[F.chain] === code) { return true; }
    var f = r[F.findings];
    for (var i = 0; i < f.length; i++) { if (f[i][0] === code) { return true; } }
    return false;
  }
  function haystack(i) {
    if (haystacks === null) { haystacks = new Array(rows.length); }
    var h = haystacks[i];
    if (h === undefined) {
      var r = rows[i], parts = [String(r[F.index]), r[F.seq], r[F.prev], r[F.msg], r[F.sender], r[F.kver],
        r[F.time], r[F.type], r[F.sig], r[F.sigd], r[F.chain], r[F.chaind], convs[r[F.conv]]];
      r[F.findings].forEach(function (f) { parts.push(f[0], f[2]); });
      h = haystacks[i] = parts.join("\\u0001").toLowerCase();
    }
    return h;
  }
  function filter() {
    var code = statusSel.value, conv = convSel ? convSel.value : "", text = search.value.trim().toLowerCase();
    matches = [];
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      if (conv !== "" && String(r[F.conv]) !== conv) { continue; }
      if (code === "@problems") {
        if (r[F.worst] !== "error" && r[F.worst] !== "warning") { continue; }
      } else if (code !== "" && !hasCode(r, code)) { continue; }
      if (text !== "" && haystack(i).indexOf(text) < 0) { continue; }
      matches.push(i);
    }
    page = 0;
    render();
  }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }
  function statusCell(status, sev, detail) {
    var td = el("td");
    td.appendChild(el("span", "pill sev-" + sev, status));
    if (detail) {
      td.title = detail;  /* a clean status's detail repeats the row (the key, the predecessor) */
      if (sev === "error" || sev === "warning") { td.appendChild(el("span", "detail", detail)); }
    }
    return td;
  }
  function row(r) {
    var tr = el("tr", r[F.worst] ? "row-" + r[F.worst] : "");
    tr.setAttribute("data-index", String(r[F.index]));
    tr.appendChild(el("td", "num", String(r[F.index])));
    if (showConv) { tr.appendChild(el("td", "id", convs[r[F.conv]])); }
    var seq = el("td");
    seq.appendChild(el("span", "id", r[F.seq] === null ? "-" : r[F.seq]));
    if (r[F.prev] !== null) { seq.appendChild(el("span", "detail id", "\\u2190 " + r[F.prev])); }
    tr.appendChild(seq);
    var type = el("td", "", r[F.type] === null ? "-" : r[F.type]);
    if (r[F.msg] !== null) { type.appendChild(el("span", "detail id clip", r[F.msg])); type.title = "message id " + r[F.msg]; }
    tr.appendChild(type);
    var sender = el("td");
    sender.appendChild(el("span", "id", r[F.sender] === null ? "-" : r[F.sender]));
    if (r[F.kver] !== null) { sender.appendChild(el("span", "detail id", "key " + r[F.kver])); }
    tr.appendChild(sender);
    tr.appendChild(el("td", "id small", r[F.time] === null ? "-" : r[F.time]));
    tr.appendChild(statusCell(r[F.sig], r[F.sigsev], r[F.sigd]));
    tr.appendChild(statusCell(r[F.chain], r[F.chainsev], r[F.chaind]));
    if (data.otherFindings) {
      var findings = el("td");
      r[F.findings].forEach(function (f) { findings.appendChild(el("span", "finding " + f[1], f[0] + ": " + f[2])); });
      tr.appendChild(findings);
    }
    return tr;
  }
  function pageSize() { return parseInt(sizeSel.value, 10) || 50; }
  function render() {
    var size = pageSize(), pages = Math.max(1, Math.ceil(matches.length / size));
    if (page >= pages) { page = pages - 1; }
    var start = page * size, end = Math.min(matches.length, start + size);
    var fragment = document.createDocumentFragment();
    for (var i = start; i < end; i++) { fragment.appendChild(row(rows[matches[i]])); }
    while (tbody.firstChild) { tbody.removeChild(tbody.firstChild); }
    tbody.appendChild(fragment);
    info.textContent = (matches.length ? (start + 1) + "\\u2013" + end : "0") + " of " + matches.length +
      " matching event(s) (" + rows.length + " in total) \\u00b7 page " + (page + 1) + " of " + pages;
    buttons.first.disabled = buttons.prev.disabled = page === 0;
    buttons.next.disabled = buttons.last.disabled = page >= pages - 1;
  }
  var timer = null;
  search.addEventListener("input", function () {
    if (timer !== null) { clearTimeout(timer); }
    timer = setTimeout(function () { timer = null; filter(); }, 150);
  });
  statusSel.addEventListener("change", filter);
  if (convSel) { convSel.addEventListener("change", filter); }
  sizeSel.addEventListener("change", function () { page = 0; render(); });
  buttons.first.addEventListener("click", function () { page = 0; render(); });
  buttons.prev.addEventListener("click", function () { page = Math.max(0, page - 1); render(); });
  buttons.next.addEventListener("click", function () { page += 1; render(); });
  buttons.last.addEventListener("click", function () { page = Number.MAX_SAFE_INTEGER; render(); });
  Array.prototype.forEach.call(document.querySelectorAll("button[data-code]"), function (b) {
    b.addEventListener("click", function () {
      statusSel.value = b.getAttribute("data-code");
      search.value = "";
      if (convSel) { convSel.value = ""; }
      filter();
      table.scrollIntoView({block: "start"});
    });
  });
  document.getElementById("xv-controls").hidden = false;
  filter();
}());
"""
