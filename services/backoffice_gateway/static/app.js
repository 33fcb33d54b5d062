/* Back-office behaviour. Every page works without this file (server-rendered, links and
   forms); it only adds: the operator's UTC offset for dates, banners that refresh without a
   reload, and the accounts side pane opened in place. Loaded from /static (the CSP allows no
   inline script), written with DOM methods only (no HTML strings from JSON). */
(function () {
  "use strict";

  // 1. Tell the server the browser's offset from UTC (minutes east), for "UTC (local)" dates.
  var offset = -new Date().getTimezoneOffset();
  if (document.cookie.indexOf("tzoffset=" + offset) === -1) {
    document.cookie = "tzoffset=" + offset + "; path=/; SameSite=Lax; max-age=31536000";
  }

  // 2. Banners: poll the JSON endpoint named by #banners[data-poll-url].
  function renderBanners(box, banners) {
    while (box.firstChild) { box.removeChild(box.firstChild); }
    banners.forEach(function (b) {
      var div = document.createElement("div");
      div.className = "banner " + (b.level || "info");
      div.setAttribute("role", "status");
      div.setAttribute("data-kind", b.kind || "");
      var strong = document.createElement("strong");
      strong.textContent = b.title || "";
      div.appendChild(strong);
      var text = document.createElement("span");
      text.textContent = b.message || "";
      div.appendChild(text);
      if (b.href) {
        var a = document.createElement("a");
        a.href = b.href;
        a.textContent = b.link_text || "Show";
        div.appendChild(a);
      }
      box.appendChild(div);
    });
  }

  function pollBanners() {
    var box = document.getElementById("banners");
    if (!box || !box.getAttribute("data-poll-url") || !window.fetch) { return; }
    var url = box.getAttribute("data-poll-url");
    var every = parseInt(box.getAttribute("data-poll-ms") || "15000", 10);
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (data && Array.isArray(data.banners)) {
            renderBanners(box, data.banners);
            box.setAttribute("data-updated", data.checked_at || String(Date.now()));
          }
        })
        .catch(function () { /* offline for a moment: keep the last banners */ })
        .then(function () { window.setTimeout(tick, every); });
    }
    window.setTimeout(tick, every);
  }

  // 3. Side pane: links marked data-pane load /accounts/<id>/pane into aside#pane; the
  //    address bar keeps ?preview=<id> (the same URL renders the pane server-side).
  function openPane(link) {
    var pane = document.getElementById("pane");
    var layout = document.querySelector(".with-pane");
    if (!pane || !layout || !window.fetch) { return false; }
    fetch(link.getAttribute("data-pane"), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("aside#pane");
        if (!fresh) { throw new Error("no pane"); }
        pane.replaceChildren.apply(pane, Array.prototype.slice.call(fresh.childNodes));
        pane.hidden = false;
        layout.classList.add("open");
        Array.prototype.forEach.call(document.querySelectorAll("tr.selected"), function (tr) {
          tr.classList.remove("selected");
        });
        var row = link.closest("tr");
        if (row) { row.classList.add("selected"); }
        history.replaceState(null, "", link.href);
        var heading = pane.querySelector("h2");
        if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus(); }
      })
      .catch(function () { window.location.href = link.href; });
    return true;
  }

  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey ||
        event.shiftKey || event.altKey) { return; }
    var link = event.target.closest ? event.target.closest("a[data-pane]") : null;
    if (link && openPane(link)) { event.preventDefault(); return; }
    var close = event.target.closest ? event.target.closest("a[data-pane-close]") : null;
    if (close) {
      var pane = document.getElementById("pane");
      var layout = document.querySelector(".with-pane");
      if (pane && layout) {
        event.preventDefault();
        pane.hidden = true;
        layout.classList.remove("open");
        history.replaceState(null, "", close.href);
      }
    }
    // Close open multi-select dropdowns when clicking elsewhere.
    Array.prototype.forEach.call(document.querySelectorAll("details.multi[open], details.menu[open]"),
      function (d) { if (!d.contains(event.target)) { d.removeAttribute("open"); } });
  });

  // 4. Filter forms: a changed checkbox or select submits at once (the button stays for
  //    keyboard users and for browsers without this file).
  document.addEventListener("change", function (event) {
    var form = event.target.form;
    if (form && form.classList.contains("filters") && event.target.matches("select, input[type=checkbox]")) {
      if (!event.target.closest("details.multi")) { form.submit(); }
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", pollBanners);
  } else {
    pollBanners();
  }
})();
