/* qrspec HTML report: sorting, filtering and the exclusion list. Classic script (file://
   pages cannot load ES modules), no external resources, no network. */
(function () {
  "use strict";

  var errorsBox = null;
  function showError(text) {
    errorsBox = errorsBox || document.getElementById("js-errors");
    if (errorsBox) {
      errorsBox.textContent += text + "\n";
      errorsBox.className = "shown";
    }
  }
  window.addEventListener("error", function (ev) {
    showError("JavaScript error: " + ev.message + " (" + (ev.filename || "") + ":" +
              (ev.lineno || "") + ")");
  });

  function readConfig() {
    var el = document.getElementById("report-data");
    return el ? JSON.parse(el.textContent) : {};
  }
  var CONFIG = readConfig();
  var STORE_KEY = "qrspec-exclude:" + (CONFIG.report_id || "");

  /* ------------------------------------------------------------------ exclusion state */
  function loadState() {
    var state = null;
    try {
      var text = window.localStorage.getItem(STORE_KEY);
      if (text) { state = JSON.parse(text); }
    } catch (e) { state = null; }  /* storage disabled (some browsers on file://) */
    if (!state || typeof state !== "object" || !state.particles) {
      var init = CONFIG.initial_exclude || {particles: [], reason: {}};
      state = {particles: {}, reason: init.reason || {}};
      (init.particles || []).forEach(function (id) { state.particles[id] = true; });
    }
    state.reason = state.reason || {};
    return state;
  }
  var STATE = loadState();
  function saveState() {
    try { window.localStorage.setItem(STORE_KEY, JSON.stringify(STATE)); } catch (e) { /* */ }
  }
  function isExcluded(id) { return STATE.particles[id] === true; }
  function setExcluded(id, on) {
    if (on) { STATE.particles[id] = true; } else { delete STATE.particles[id]; }
    saveState();
  }

  /* the document `batch`/`report --exclude FILE` read (qrspec.app.exclude) */
  function exclusionDocument(orderedIds) {
    var ids = orderedIds.filter(isExcluded);
    Object.keys(STATE.particles).forEach(function (id) {  /* ids not in this table last */
      if (isExcluded(id) && ids.indexOf(id) < 0) { ids.push(id); }
    });
    var reason = {};
    ids.forEach(function (id) {
      if (typeof STATE.reason[id] === "string" && STATE.reason[id] !== "") {
        reason[id] = STATE.reason[id];
      }
    });
    return {format: "qrspec-exclude", version: 1, particles: ids, reason: reason,
            results: CONFIG.results || "", created_utc: new Date().toISOString()};
  }

  function parseExclusion(text) {
    var doc = JSON.parse(text);
    if (!doc || doc.format !== "qrspec-exclude") {
      throw new Error("not a qrspec exclusion list (format must be 'qrspec-exclude')");
    }
    if (doc.version !== 1) { throw new Error("version " + doc.version + " is not supported"); }
    if (!Array.isArray(doc.particles) || doc.particles.some(function (x) {
      return typeof x !== "string" || x === ""; })) {
      throw new Error("particles must be a list of particle ids");
    }
    return doc;
  }

  /* ------------------------------------------------------------------ particle table */
  function cellValue(row, col) {
    var td = row.cells[col];
    var v = td.getAttribute("data-v");
    return v === null ? td.textContent : v;
  }

  function initTable(table) {
    var tbody = table.tBodies[0];
    var rows = Array.prototype.slice.call(tbody.rows);
    var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
    var colIndex = {};
    heads.forEach(function (th, i) { colIndex[th.getAttribute("data-col")] = i; });
    var orderedIds = rows.map(function (r) { return r.getAttribute("data-id"); });
    var countEl = document.getElementById("count");
    var filterEl = document.getElementById("filter");
    var groupEl = document.getElementById("group-filter");
    var statusEl = document.getElementById("status-filter");
    var exclEl = document.getElementById("excluded-filter");
    var nExclEl = document.getElementById("n-excluded");
    var jsonEl = document.getElementById("exclude-json");
    var linkEl = document.getElementById("exclude-link");

    /* sorting: numbers numerically, text by locale; undefined values last either way */
    var sortState = {col: null, dir: 1};
    function sortBy(col, dir) {
      var th = heads[colIndex[col]];
      var numeric = th.getAttribute("data-type") === "num";
      var idx = colIndex[col];
      var keyed = rows.map(function (r, i) {
        var raw = cellValue(r, idx);
        var missing = raw === "" || raw === null;
        var key = numeric ? parseFloat(raw) : String(raw).toLowerCase();
        if (numeric && !isFinite(key)) { missing = true; }
        return {row: r, key: key, missing: missing, i: i};
      });
      keyed.sort(function (a, b) {
        if (a.missing !== b.missing) { return a.missing ? 1 : -1; }
        if (a.missing) { return a.i - b.i; }
        var c = numeric ? (a.key - b.key) : a.key.localeCompare(b.key);
        return c !== 0 ? dir * c : a.i - b.i;
      });
      keyed.forEach(function (k) { tbody.appendChild(k.row); });
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
      sortState = {col: col, dir: dir};
    }
    heads.forEach(function (th) {
      if (th.classList.contains("nosort")) { return; }
      th.addEventListener("click", function () {
        var col = th.getAttribute("data-col");
        sortBy(col, sortState.col === col ? -sortState.dir : 1);
      });
    });

    /* filtering: words match id, group, status, flags or source; col<v, col>=v, col=v ... */
    var OPS = /^([A-Za-z0-9_]+)(<=|>=|!=|=|<|>)(.*)$/;
    function compile(text) {
      return text.trim().split(/\s+/).filter(Boolean).map(function (term) {
        var m = OPS.exec(term);
        if (m && colIndex.hasOwnProperty(m[1])) {
          var idx = colIndex[m[1]], op = m[2], want = m[3], num = parseFloat(want);
          var numeric = heads[idx].getAttribute("data-type") === "num" && isFinite(num);
          return function (row) {
            var raw = cellValue(row, idx);
            if (numeric) {
              var v = parseFloat(raw);
              if (!isFinite(v)) { return op === "!="; }
              switch (op) {
                case "<": return v < num; case "<=": return v <= num;
                case ">": return v > num; case ">=": return v >= num;
                case "=": return v === num; default: return v !== num;
              }
            }
            var s = String(raw).toLowerCase(), w = want.toLowerCase();
            if (op === "=") { return s === w; }
            if (op === "!=") { return s !== w; }
            return op.charAt(0) === "<" ? s < w : s > w;
          };
        }
        var needle = term.toLowerCase();
        return function (row) {
          return (row.getAttribute("data-search") || "").indexOf(needle) >= 0;
        };
      });
    }
    function applyFilter() {
      var tests = compile(filterEl ? filterEl.value : "");
      var g = groupEl ? groupEl.value : "", st = statusEl ? statusEl.value : "";
      var ex = exclEl ? exclEl.value : "";
      var shown = 0;
      rows.forEach(function (r) {
        var id = r.getAttribute("data-id");
        var ok = (!g || r.getAttribute("data-group") === g) &&
                 (!st || r.getAttribute("data-status") === st) &&
                 (!ex || (ex === "only") === isExcluded(id)) &&
                 tests.every(function (t) { return t(r); });
        r.hidden = !ok;
        if (ok) { shown += 1; }
      });
      if (countEl) { countEl.textContent = "showing " + shown + " of " + rows.length; }
    }
    [filterEl, groupEl, statusEl, exclEl].forEach(function (el) {
      if (el) { el.addEventListener(el.tagName === "INPUT" ? "input" : "change", applyFilter); }
    });

    /* exclusion checkboxes and reasons */
    function refreshExclusion() {
      rows.forEach(function (r) {
        var id = r.getAttribute("data-id");
        var on = isExcluded(id);
        r.classList.toggle("excluded", on);
        var box = r.querySelector("input.exclude");
        if (box) { box.checked = on; }
        var reason = r.querySelector("input.reason");
        if (reason) { reason.value = STATE.reason[id] || ""; }
      });
      var n = orderedIds.filter(isExcluded).length;
      if (nExclEl) { nExclEl.textContent = String(n); }
      if (jsonEl) { jsonEl.value = JSON.stringify(exclusionDocument(orderedIds), null, 1); }
      if (linkEl) { linkEl.hidden = true; }
    }
    rows.forEach(function (r) {
      var id = r.getAttribute("data-id");
      var box = r.querySelector("input.exclude");
      if (box) {
        box.addEventListener("change", function () {
          setExcluded(id, box.checked);
          refreshExclusion();
          applyFilter();
        });
      }
      var reason = r.querySelector("input.reason");
      if (reason) {
        reason.addEventListener("input", function () {
          STATE.reason[id] = reason.value;
          saveState();
          if (jsonEl) { jsonEl.value = JSON.stringify(exclusionDocument(orderedIds), null, 1); }
        });
      }
    });

    var saveBtn = document.getElementById("save-exclude");
    if (saveBtn) {
      saveBtn.addEventListener("click", function () {
        var text = JSON.stringify(exclusionDocument(orderedIds), null, 1) + "\n";
        if (jsonEl) { jsonEl.value = text; }
        var url = URL.createObjectURL(new Blob([text], {type: "application/json"}));
        if (linkEl) {
          if (linkEl.href && linkEl.href.indexOf("blob:") === 0) {
            URL.revokeObjectURL(linkEl.href);
          }
          linkEl.href = url;
          linkEl.hidden = false;
          linkEl.click();  /* the browser's download of exclude.json */
        }
      });
    }
    var clearBtn = document.getElementById("clear-exclude");
    if (clearBtn) {
      clearBtn.addEventListener("click", function () {
        STATE.particles = {};
        saveState();
        refreshExclusion();
        applyFilter();
      });
    }
    var loadEl = document.getElementById("load-exclude");
    if (loadEl) {
      loadEl.addEventListener("change", function () {
        var file = loadEl.files && loadEl.files[0];
        if (!file) { return; }
        var reader = new FileReader();
        reader.onload = function () {
          try {
            var doc = parseExclusion(String(reader.result));
            STATE.particles = {};
            doc.particles.forEach(function (id) { STATE.particles[id] = true; });
            STATE.reason = doc.reason || {};
            saveState();
            refreshExclusion();
            applyFilter();
          } catch (e) {
            showError(file.name + ": " + e.message);
          }
        };
        reader.readAsText(file);
      });
    }
    var thumbsEl = document.getElementById("show-thumbs");
    if (thumbsEl) {
      thumbsEl.addEventListener("change", function () {
        table.classList.toggle("nothumbs", !thumbsEl.checked);
      });
    }

    refreshExclusion();
    applyFilter();
    /* for scripted checks and power users: the current exclusion document */
    window.qrspecReport = {
      sortBy: sortBy,
      applyFilter: applyFilter,
      exclusionDocument: function () { return exclusionDocument(orderedIds); },
      visibleIds: function () {
        return Array.prototype.slice.call(tbody.rows).filter(function (r) {
          return !r.hidden; }).map(function (r) { return r.getAttribute("data-id"); });
      }
    };
  }

  /* ------------------------------------------------------------------ particle page */
  function initParticlePage(box) {
    var id = box.getAttribute("data-id");
    box.checked = isExcluded(id);
    box.addEventListener("change", function () { setExcluded(id, box.checked); });
  }

  function init() {
    var table = document.getElementById("particles");
    if (table) { initTable(table); }
    var box = document.getElementById("exclude-this");
    if (box) { initParticlePage(box); }
    Array.prototype.forEach.call(document.querySelectorAll(".gallery a[data-id]"), function (a) {
      a.classList.toggle("excluded", isExcluded(a.getAttribute("data-id")));
    });
    document.documentElement.setAttribute("data-ready", "1");
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
}());
