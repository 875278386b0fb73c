// Live jobs: swap in the server-rendered table every 2 s while a job is queued or running.
"use strict";
(function () {
  const PERIOD = 2000;
  async function refresh(box) {
    try {
      const headers = { "Accept": "text/html" };
      const key = sessionStorage.getItem("nnserve-admin-token");  // NNSERVE_AUTH=closed wants it for the table too
      if (key) headers["Authorization"] = "Bearer " + key;
      const response = await fetch(box.dataset.fragment, { headers });
      if (response.ok) box.innerHTML = await response.text();
    } catch (err) {
      // offline for a moment: keep the last table and try again
    }
    schedule(box);
  }
  function schedule(box) {
    if (box.querySelector('tr[data-status="queued"], tr[data-status="running"]')) setTimeout(() => refresh(box), PERIOD);
    else setTimeout(() => refresh(box), PERIOD * 5);
  }
  document.addEventListener("DOMContentLoaded", function () {
    const box = document.getElementById("jobs");
    if (box) schedule(box);
  });
})();
