// lakehose dashboards: tooltips over chart marks, filters applied without a
// full reload, PNG downloads of a chart, and the light/dark switch. No
// request leaves the server that served the page.
(function () {
  "use strict";
  var root = document.documentElement;
  var saved = null;
  try { saved = localStorage.getItem("lh-theme"); } catch (e) { /* private mode */ }
  if (saved === "light" || saved === "dark") root.setAttribute("data-theme", saved);

  function tip() { return document.getElementById("lh-tip"); }

  document.addEventListener("mouseover", function (ev) {
    var mark = ev.target.closest && ev.target.closest(".lh-mark");
    var t = tip();
    if (!mark || !t) return;
    var title = mark.querySelector("title");
    t.textContent = title ? title.textContent : (mark.getAttribute("data-x") + ": " + mark.getAttribute("data-y"));
    t.hidden = false;
  });
  document.addEventListener("mousemove", function (ev) {
    var t = tip();
    if (t && !t.hidden) {
      t.style.left = (ev.clientX + 12) + "px";
      t.style.top = (ev.clientY + 12) + "px";
    }
  });
  document.addEventListener("mouseout", function (ev) {
    var mark = ev.target.closest && ev.target.closest(".lh-mark");
    var t = tip();
    if (mark && t) t.hidden = true;
  });

  document.addEventListener("click", function (ev) {
    var toggle = ev.target.closest && ev.target.closest("[data-lh-theme]");
    if (toggle) {
      var dark = root.getAttribute("data-theme") === "dark" ||
        (!root.getAttribute("data-theme") && window.matchMedia("(prefers-color-scheme: dark)").matches);
      var next = dark ? "light" : "dark";
      root.setAttribute("data-theme", next);
      try { localStorage.setItem("lh-theme", next); } catch (e) { /* private mode */ }
      return;
    }
    var png = ev.target.closest && ev.target.closest("[data-lh-png]");
    if (png) {
      ev.preventDefault();
      var card = document.getElementById("v-" + png.getAttribute("data-lh-png"));
      var svg = card && card.querySelector("figure svg");
      if (svg) downloadPng(svg, png.getAttribute("data-lh-png") + ".png");
    }
  });

  function downloadPng(svg, name) {
    var box = svg.viewBox.baseVal;
    var w = box && box.width ? box.width : svg.clientWidth;
    var h = box && box.height ? box.height : svg.clientHeight;
    var text = new XMLSerializer().serializeToString(svg);
    var img = new Image();
    img.onload = function () {
      var canvas = document.createElement("canvas");
      canvas.width = w * 2; canvas.height = h * 2;
      var g = canvas.getContext("2d");
      g.fillStyle = getComputedStyle(document.body).backgroundColor;
      g.fillRect(0, 0, canvas.width, canvas.height);
      g.drawImage(img, 0, 0, canvas.width, canvas.height);
      canvas.toBlob(function (blob) {
        var a = document.createElement("a");
        a.href = URL.createObjectURL(blob);
        a.download = name;
        document.body.appendChild(a);
        a.click();
        setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
      });
    };
    img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(text);
  }

  // Filters: fetch the page's main part for the new selection and swap it
  // in; the address follows, so a reload or a shared link shows the same.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (form.id !== "lh-filters") return;
    ev.preventDefault();
    var params = new URLSearchParams(new FormData(form));
    Array.from(params.keys()).forEach(function (k) { if (params.get(k) === "") params.delete(k); });
    var query = params.toString();
    var url = form.getAttribute("action") + (query ? "?" + query : "");
    var main = document.getElementById("lh-main");
    main.classList.add("lh-loading");
    fetch(url + (query ? "&" : "?") + "partial=1", { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.text(); })
      .then(function (html) {
        main.innerHTML = html;
        main.classList.remove("lh-loading");
        history.pushState(null, "", url);
        document.body.setAttribute("data-lh-updated", String(Date.now()));
      })
      .catch(function () { window.location = url; });
  });
  window.addEventListener("popstate", function () { window.location.reload(); });
})();
