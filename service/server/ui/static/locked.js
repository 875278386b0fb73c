// NNSERVE_AUTH=closed: a page is loaded again by this script with the tab's key as an Authorization header
// (a browser's navigation cannot send one, and the key never goes into a URL or a cookie).
"use strict";
(function () {
  const KEY = "nnserve-admin-token";
  async function load() {
    const key = sessionStorage.getItem(KEY);
    if (!key) return;
    let response;
    try {
      response = await fetch(location.href, { headers: { "Authorization": "Bearer " + key, "Accept": "text/html" } });
    } catch (err) {
      return;
    }
    if (!response.ok) {
      let data = {};
      try { data = await response.json(); } catch (err) { data = {}; }
      const box = document.getElementById("admin-message");
      box.textContent = "Error " + response.status + ": " + (data.message || response.statusText);
      box.hidden = false;
      return;
    }
    const html = await response.text();
    document.open();
    document.write(html);
    document.close();
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.getElementById("admin-form").addEventListener("submit", function () { setTimeout(load, 0); });
    load();
  });
})();
