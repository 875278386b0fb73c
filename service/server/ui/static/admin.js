// Admin actions: the key (or admin token) lives in sessionStorage only and goes out as an Authorization header.
"use strict";
(function () {
  const KEY = "nnserve-admin-token";
  const token = () => sessionStorage.getItem(KEY) || "";

  function show(text, ok) {
    const box = document.getElementById("admin-message");
    if (!box) return;
    box.textContent = text;
    box.classList.toggle("ok", !!ok);
    box.hidden = false;
  }

  function state() {
    const el = document.getElementById("admin-state");
    if (el) el.textContent = token() ? "key set for this tab" : "no key: admin actions disabled";
  }

  async function call(method, url, body) {
    if (!token()) { show("Enter an admin key first."); return null; }
    const headers = { "Authorization": "Bearer " + token() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      show("The server could not be reached: " + err.message);
      return null;
    }
    let data = {};
    try { data = await response.json(); } catch (err) { data = {}; }
    if (!response.ok) {
      show("Error " + response.status + ": " + (data.message || response.statusText));
      return null;
    }
    return data;
  }

  document.addEventListener("DOMContentLoaded", function () {
    state();
    const form = document.getElementById("admin-form");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      const input = document.getElementById("admin-token");
      if (input.value) sessionStorage.setItem(KEY, input.value);
      input.value = "";
      state();
    });
    document.getElementById("admin-forget").addEventListener("click", function () {
      sessionStorage.removeItem(KEY);
      state();
    });
    document.addEventListener("click", async function (event) {
      const button = event.target.closest("button.activate, button.cancel");
      if (!button) return;
      if (button.classList.contains("activate")) {
        const name = button.dataset.model, version = button.dataset.version;
        const data = await call("POST", "/v1/models/" + encodeURIComponent(name) + "/versions/" + encodeURIComponent(version) + "/activate");
        if (data) { show("Version " + version + " of " + name + " is active.", true); setTimeout(() => location.reload(), 600); }
      } else {
        const job = button.dataset.job;
        const data = await call("DELETE", "/v1/jobs/" + encodeURIComponent(job));
        if (data) show("Job " + job + ": " + data.status + ".", true);
      }
    });
    document.querySelectorAll("form.retrain").forEach(function (retrain) {
      retrain.addEventListener("submit", async function (event) {
        event.preventDefault();
        const name = retrain.dataset.model;
        const promote = retrain.querySelector("select[name=promote]").value;
        const data = await call("POST", "/v1/models/" + encodeURIComponent(name) + "/retrain", { promote });
        if (data) show("Job " + data.id + " queued for " + name + ". See Jobs.", true);
      });
    });
    // "Explain a row" is a plain form; with a key set it goes out with the key (NNSERVE_AUTH=closed needs one),
    // and its answer page replaces this one as a navigation would.
    document.querySelectorAll("form.explain").forEach(function (explain) {
      explain.addEventListener("submit", async function (event) {
        if (!token()) return;
        event.preventDefault();
        let response;
        try {
          response = await fetch(explain.action, {
            method: "POST",
            headers: { "Authorization": "Bearer " + token(), "Accept": "text/html" },
            body: new URLSearchParams(new FormData(explain)),
          });
        } catch (err) {
          show("The server could not be reached: " + err.message);
          return;
        }
        const type = response.headers.get("Content-Type") || "";
        if (!type.startsWith("text/html")) {
          let data = {};
          try { data = await response.json(); } catch (err) { data = {}; }
          show("Error " + response.status + ": " + (data.message || response.statusText));
          return;
        }
        const html = await response.text();
        document.open();
        document.write(html);
        document.close();
      });
    });
  });
})();
