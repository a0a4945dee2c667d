// workerkit dashboard: confirmations, select-all, and live polling of the stats endpoint.
// Loaded as a file (the Content-Security-Policy forbids inline script); the pages work without it.
"use strict";

document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const message = (button && button.dataset.confirm) || event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

document.addEventListener("change", (event) => {
  const box = event.target;
  if (!box.matches("[data-select-all]")) return;
  for (const item of box.form.querySelectorAll('input[name="key"]')) item.checked = box.checked;
});

function startLive(section) {
  const url = section.dataset.pollUrl;
  const select = document.getElementById("poll-interval");
  const toggle = document.getElementById("poll-toggle");
  const status = document.getElementById("live-status");
  const graph = document.getElementById("live-graph");
  const samples = [];
  const width = 600, height = 120, keep = 60;
  let previous = null, timer = null, paused = false;

  const saved = window.localStorage.getItem("workerkit.poll");
  if (saved && select.querySelector(`option[value="${saved}"]`)) select.value = saved;

  function draw() {
    const peak = Math.max(1, ...samples.map((s) => Math.max(s.processed, s.failed)));
    document.getElementById("live-peak").textContent = ` (top of the graph: ${peak.toLocaleString("en-US")})`;
    const step = width / (keep - 1);
    const offset = keep - samples.length;
    for (const name of ["processed", "failed"]) {
      const points = samples.map((s, i) => `${((offset + i) * step).toFixed(1)},${(height - 4 - (s[name] / peak) * (height - 8)).toFixed(1)}`);
      graph.querySelector(`.line-${name}`).setAttribute("points", points.join(" "));
    }
  }

  function show(stats) {
    for (const element of document.querySelectorAll("[data-stat]")) {
      const value = stats[element.dataset.stat];
      if (typeof value === "number") element.textContent = value.toLocaleString("en-US");
    }
    for (const row of document.querySelectorAll("tr[data-queue]")) {
      const queue = (stats.queues || {})[row.dataset.queue] || { size: 0, latency: 0 };
      row.querySelector('[data-field="size"]').textContent = queue.size.toLocaleString("en-US");
      row.querySelector('[data-field="latency"]').textContent = `${queue.latency.toFixed(1)} s`;
    }
    if (previous) {
      samples.push({ processed: Math.max(0, stats.processed - previous.processed), failed: Math.max(0, stats.failed - previous.failed) });
      if (samples.length > keep) samples.shift();
      draw();
    }
    previous = stats;
  }

  async function poll() {
    timer = null;
    try {
      const response = await fetch(url, { headers: { accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      show(await response.json());
      status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      status.textContent = `update failed (${error.message}); retrying`;
    }
    schedule();
  }

  function schedule() {
    if (timer) window.clearTimeout(timer);
    timer = paused ? null : window.setTimeout(poll, Number(select.value) * 1000);
  }

  select.addEventListener("change", () => {
    window.localStorage.setItem("workerkit.poll", select.value);
    schedule();
  });
  toggle.addEventListener("click", () => {
    paused = !paused;
    toggle.textContent = paused ? "Resume" : "Pause";
    toggle.setAttribute("aria-pressed", String(paused));
    status.textContent = paused ? "paused" : "resuming";
    if (!paused) poll(); else schedule();
  });
  status.textContent = "live";
  poll();
}

const live = document.getElementById("live");
if (live) startLive(live);
