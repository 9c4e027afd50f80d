/* The contract editor (templates/portal/contracts/editor.html): live checks as the user types.

   The text is posted to the page's check URL (data-check-url) 250 ms after the last keystroke, with the
   CSRF token in the X-CSRFToken header; the answer's diagnostics are listed beside the text, marked in the
   line-number gutter and underlined in a mirror layer behind the textarea, and the answer's plan replaces
   the plan panel. A click on a diagnostic selects its span in the text, a click on a step of the plan the
   line it comes from; lines changed since the page opened are barred in the gutter. On the same page: the
   what-if preview (a fragment fetched into #preview) and the backtest form, given the editor's text.
   No framework, no inline script: the portal's CSP allows only scripts served by the app. */
(function () {
  "use strict";

  var root = document.querySelector("[data-contract-editor]");
  if (!root) { return; }
  var text = root.querySelector(".editor-text");
  var gutter = root.querySelector(".editor-gutter");
  var marks = root.querySelector(".editor-marks");
  var list = document.getElementById("diagnostics");
  var count = document.getElementById("diagnostic-count");
  var noProblems = document.getElementById("no-problems");
  var status = document.getElementById("check-status");
  var timing = document.getElementById("check-timing");
  var dirtyFlag = document.getElementById("dirty");
  var cursor = document.getElementById("cursor");
  var plan = document.getElementById("plan");
  var planNote = document.getElementById("plan-note");
  var saveForm = document.getElementById("save-form");
  var saveButton = document.getElementById("save-button");
  var saveHint = document.getElementById("save-hint");
  var revert = document.getElementById("revert");
  var editable = root.dataset.editable === "yes";
  var DELAY = 250;

  var diagnostics = readDiagnostics();
  var original = text.value;
  var lineCount = 0;
  var timer = null;
  var inFlight = null;
  var sequence = 0;
  var submitting = false;
  var escaped = false;

  /* ---- positions ---- */

  function lineStarts(value) {
    var starts = [0];
    for (var i = 0; i < value.length; i++) {
      if (value.charCodeAt(i) === 10) { starts.push(i + 1); }
    }
    return starts;
  }

  function offsetOf(starts, value, line, column) {
    if (line > starts.length) { return value.length; }
    var start = starts[Math.max(line, 1) - 1];
    var end = line < starts.length ? starts[line] - 1 : value.length;
    return Math.min(start + Math.max(column, 1) - 1, end);
  }

  /* ---- diagnostics: from the page, from the check, to the list, gutter and underlines ---- */

  function readDiagnostics() {
    return Array.prototype.map.call(list.querySelectorAll("button[data-line]"), function (button) {
      var d = button.dataset;
      return { line: +d.line, column: +d.column, end: { line: +d.endLine, column: +d.endColumn },
               severity: d.severity, message: button.querySelector(".message").textContent,
               code: button.querySelector(".code").textContent };
    });
  }

  function renderList() {
    list.textContent = "";
    diagnostics.forEach(function (d) {
      var item = document.createElement("li");
      item.className = "diagnostic diagnostic-" + d.severity;
      var button = document.createElement("button");
      button.type = "button";
      button.dataset.line = d.line;
      button.dataset.column = d.column;
      button.dataset.endLine = d.end.line;
      button.dataset.endColumn = d.end.column;
      button.dataset.severity = d.severity;
      [["where mono", d.line + ":" + d.column], ["message", d.message], ["code mono", d.code]].forEach(function (part) {
        var span = document.createElement("span");
        span.className = part[0];
        span.textContent = part[1];
        button.appendChild(span);
      });
      item.appendChild(button);
      list.appendChild(item);
    });
    count.textContent = diagnostics.length;
    noProblems.hidden = diagnostics.length > 0;
  }

  function renderGutter(force) {
    var value = text.value;
    var lines = lineStarts(value).length;
    var worst = {};
    diagnostics.forEach(function (d) {
      if (worst[d.line] !== "error") { worst[d.line] = d.severity; }
    });
    if (lines !== lineCount || force) {
      lineCount = lines;
      var fragment = document.createDocumentFragment();
      for (var n = 1; n <= lines + 2; n++) {
        var number = document.createElement("div");
        number.className = "line-number";
        number.textContent = n <= lines ? n : "";
        fragment.appendChild(number);
      }
      gutter.textContent = "";
      gutter.appendChild(fragment);
    }
    var changed = changedLines(original, value);
    Array.prototype.forEach.call(gutter.children, function (number, index) {
      var severity = worst[index + 1];
      number.classList.toggle("changed", changed.has(index + 1));
      number.classList.toggle("has-error", severity === "error");
      number.classList.toggle("has-warning", severity === "warning");
      if (severity) {
        number.title = diagnostics.filter(function (d) { return d.line === index + 1; })
          .map(function (d) { return d.severity + ": " + d.message; }).join("\n");
      } else {
        number.removeAttribute("title");
      }
    });
  }

  /* Lines of `after` that are not in `before` (added or changed): a longest common subsequence of the lines
     between the common head and tail, which is where an edit usually is; a middle too large for that is all
     marked. */
  function changedLines(before, after) {
    var changed = new Set();
    if (before === after) { return changed; }
    var a = before.split("\n"), b = after.split("\n");
    var head = 0;
    while (head < a.length && head < b.length && a[head] === b[head]) { head++; }
    var tail = 0;
    while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) {
      tail++;
    }
    var old = a.slice(head, a.length - tail), now = b.slice(head, b.length - tail);
    var n = old.length, m = now.length, i, j;
    if (n * m > 4000000) {
      for (j = 0; j < m; j++) { changed.add(head + j + 1); }
      return changed;
    }
    var width = m + 1, common = new Int32Array((n + 1) * width);
    for (i = n - 1; i >= 0; i--) {
      for (j = m - 1; j >= 0; j--) {
        common[i * width + j] = old[i] === now[j] ? common[(i + 1) * width + j + 1] + 1
          : Math.max(common[(i + 1) * width + j], common[i * width + j + 1]);
      }
    }
    for (i = 0, j = 0; j < m;) {
      if (i < n && old[i] === now[j]) { i++; j++; }
      else if (i < n && common[(i + 1) * width + j] >= common[i * width + j + 1]) { i++; }
      else { changed.add(head + j + 1); j++; }
    }
    return changed;
  }

  function renderMarks() {
    var value = text.value;
    var starts = lineStarts(value);
    var ranges = diagnostics.map(function (d) {
      var from = offsetOf(starts, value, d.line, d.column);
      var to = offsetOf(starts, value, d.end.line, d.end.column);
      if (d.end.line < d.line || to <= from) { to = from; }
      return { from: from, to: to, severity: d.severity };
    }).sort(function (a, b) { return a.from - b.from || b.to - a.to; });
    var fragment = document.createDocumentFragment();
    var at = 0;
    ranges.forEach(function (range) {
      if (range.from < at) { return; }          // overlapping: the first one marked is enough to see
      fragment.appendChild(document.createTextNode(value.slice(at, range.from)));
      var mark = document.createElement("mark");
      mark.className = "mark-" + range.severity;
      var covered = value.slice(range.from, range.to);
      if (!covered || covered === "\n") {       // an empty span, or one at the end of a line: a visible stub
        mark.className += " mark-point";
        covered = " ";
        mark.textContent = covered;
        fragment.appendChild(mark);
        at = range.from;
        return;
      }
      mark.textContent = covered;
      fragment.appendChild(mark);
      at = range.to;
    });
    fragment.appendChild(document.createTextNode(value.slice(at) + "\n\n\n"));
    marks.textContent = "";
    marks.appendChild(fragment);
    syncScroll();
  }

  function renderStatus(errors, warnings, note) {
    var parts = [];
    if (errors) { parts.push(errors + " error" + (errors === 1 ? "" : "s")); }
    if (warnings) { parts.push(warnings + " warning" + (warnings === 1 ? "" : "s")); }
    status.textContent = parts.length ? parts.join(", ") : "No problems";
    status.className = "check-status " + (errors ? "has-errors" : warnings ? "has-warnings" : "clean");
    timing.textContent = note || "";
    if (saveButton) {
      saveButton.disabled = errors > 0;
      saveHint.textContent = errors ? "Fix the errors to save." : "";
    }
  }

  function render() {
    renderList();
    renderGutter(true);
    renderMarks();
  }

  /* ---- checking ---- */

  function scheduleCheck() {
    clearTimeout(timer);
    timer = setTimeout(check, DELAY);
    status.className = "check-status checking";
    status.textContent = "Checking…";
  }

  function refusal(response) {
    if (response.redirected) { return "your session has ended: copy your text, then reload the page to sign in again"; }
    if (response.status === 400) { return "the page has expired: reload it (copy your text first)"; }
    if (response.status === 403) { return "your role may no longer edit contracts"; }
    if (response.status === 413) { return "the text is too long to check"; }
    return "the server answered " + response.status + "; try again in a moment";
  }

  function check() {
    if (inFlight) { inFlight.abort(); }
    var controller = new AbortController();
    inFlight = controller;
    var mine = ++sequence;
    var started = performance.now();
    fetch(root.dataset.checkUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": root.dataset.csrf, "Accept": "application/json" },
      body: new URLSearchParams({ source: text.value }),
      signal: controller.signal
    }).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      if (response.redirected || type.indexOf("application/json") === -1) {
        throw new Error(refusal(response));
      }
      return response.json().then(function (answer) {
        if (!response.ok) { throw new Error(answer.error || "the check failed (" + response.status + ")"); }
        return answer;
      });
    }).then(function (answer) {
      if (mine !== sequence) { return; }
      inFlight = null;
      diagnostics = answer.diagnostics;
      render();
      renderStatus(answer.errors, answer.warnings,
                   "checked in " + Math.round(performance.now() - started) + " ms");
      if (answer.plan !== null) {
        plan.textContent = answer.plan;
        plan.classList.remove("stale");
        planNote.textContent = "What billing plan prints: the steps each site runs, every period, in order. " +
                             "Click a step to see its line in the text.";
      } else {
        plan.classList.add("stale");
        planNote.textContent = plan.textContent
          ? "The contract has errors: this is the plan of the last text without errors."
          : "No plan while the contract has errors.";
      }
    }).catch(function (problem) {
      if (problem.name === "AbortError" || mine !== sequence) { return; }
      inFlight = null;
      status.className = "check-status failed";
      status.textContent = "Not checked";
      timing.textContent = problem.message;
    });
  }

  /* ---- moving around ---- */

  function lineHeight() {
    return parseFloat(getComputedStyle(text).lineHeight) || 20;
  }

  function goTo(line, column, endLine, endColumn) {
    var value = text.value;
    var starts = lineStarts(value);
    var from = offsetOf(starts, value, line, column);
    var to = offsetOf(starts, value, endLine, endColumn);
    text.focus();
    text.setSelectionRange(from, Math.max(from, to));
    text.scrollTop = Math.max(0, (line - 1) * lineHeight() - text.clientHeight / 3);
    syncScroll();
    showCursor();
  }

  function syncScroll() {
    gutter.scrollTop = text.scrollTop;
    marks.scrollTop = text.scrollTop;
    marks.scrollLeft = text.scrollLeft;
  }

  function showCursor() {
    var before = text.value.slice(0, text.selectionStart);
    var line = before.split("\n").length;
    cursor.textContent = "Ln " + line + ", Col " + (before.length - before.lastIndexOf("\n"));
  }

  function markDirty() {
    var changed = gutter.querySelectorAll(".line-number.changed").length;
    dirtyFlag.hidden = text.value === original;
    dirtyFlag.textContent = "Unsaved changes" + (changed ? " · " + changed + " line" + (changed === 1 ? "" : "s") : "");
    if (revert) { revert.hidden = dirtyFlag.hidden; }
  }

  list.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-line]");
    if (!button) { return; }
    var d = button.dataset;
    goTo(+d.line, +d.column, +d.endLine, +d.endColumn);
  });

  plan.addEventListener("click", function () {
    // A step of the plan names the contract line it comes from, "(line 9, category standard)": show that line.
    var selection = window.getSelection();
    if (!selection.isCollapsed || !plan.contains(selection.anchorNode)) { return; }
    var lines = plan.textContent.slice(0, selection.anchorOffset).split("\n");
    var all = plan.textContent.split("\n");
    for (var index = lines.length - 1; index >= 0 && index >= lines.length - 2; index--) {
      var found = /\(line (\d+), /.exec(all[index]);
      if (found) { goTo(+found[1], 1, +found[1], 100000); return; }
    }
  });

  text.addEventListener("scroll", syncScroll);
  ["keyup", "click", "select"].forEach(function (name) { text.addEventListener(name, showCursor); });

  if (editable) {
    text.addEventListener("input", function () {
      renderGutter(false);
      renderMarks();
      markDirty();
      scheduleCheck();
    });
    text.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { escaped = true; return; }   // Escape, then Tab: leave the text
      if (event.key === "Tab" && !event.shiftKey && !escaped && !event.ctrlKey && !event.altKey) {
        event.preventDefault();
        if (!document.execCommand("insertText", false, "    ")) {   // keeps the browser's undo where it can
          text.setRangeText("    ", text.selectionStart, text.selectionEnd, "end");
          text.dispatchEvent(new Event("input"));
        }
      }
      if ((event.ctrlKey || event.metaKey) && event.key === "s" && saveForm) {
        event.preventDefault();                                  // Ctrl+S: to the comment, then save
        var comment = saveForm.querySelector("[name=comment]");
        if (comment && !comment.value.trim()) { comment.focus(); } else { saveForm.requestSubmit(); }
      }
      escaped = false;
    });
    if (revert) {
      revert.addEventListener("click", function () {     // back to the text as opened; undo (Ctrl+Z) brings it back
        text.focus();
        text.select();
        if (!document.execCommand("insertText", false, original)) { text.value = original; }
        text.dispatchEvent(new Event("input"));
        text.setSelectionRange(0, 0);
        text.scrollTop = 0;
      });
    }
    window.addEventListener("beforeunload", function (event) {
      if (!submitting && text.value !== original) { event.preventDefault(); event.returnValue = ""; }
    });
  }
  if (saveForm) {
    saveForm.addEventListener("submit", function () { submitting = true; });
  }

  /* ---- what if (admin_app/whatif.py, when the app has it) ---- */

  var preview = document.getElementById("preview");
  var previewForm = document.getElementById("preview-form");
  if (previewForm) {
    previewForm.addEventListener("submit", function (event) {
      event.preventDefault();
      var period = previewForm.querySelector("[name=period]").value.trim();
      preview.classList.add("loading");
      preview.textContent = "Computing the invoice for " + period + "…";
      fetch(previewForm.dataset.previewUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": root.dataset.csrf },
        body: new URLSearchParams({ source: text.value, period: period })
      }).then(function (response) {
        return response.text().then(function (html) {
          preview.classList.remove("loading");
          if (response.redirected) { throw new Error("your session has ended: reload the page"); }
          preview.innerHTML = html;        // our own server's fragment, rendered by a template (escaped)
        });
      }).catch(function (problem) {
        preview.classList.remove("loading");
        preview.textContent = "No preview: " + problem.message;
      });
    });
  }
  var backtestForm = document.getElementById("backtest-form");
  if (backtestForm) {
    backtestForm.addEventListener("submit", function () {
      backtestForm.querySelector("[name=source]").value = text.value;
      submitting = true;
    });
  }

  render();
  renderStatus(diagnostics.filter(function (d) { return d.severity === "error"; }).length,
               diagnostics.filter(function (d) { return d.severity !== "error"; }).length, "");
  showCursor();
}());
