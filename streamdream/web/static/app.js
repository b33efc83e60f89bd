// The page: one WebSocket carries the status in (about 20 times a second) and the controls out.
"use strict";

const $ = (id) => document.getElementById(id);
const SLIDERS = ["intensity", "mix", "gain_db", "feedback"];
let ws = null;
let touched = {};       // control -> time it was last moved here: the echo does not fight a finger
let queued = {};        // moves waiting for the next animation frame (one message per frame at most)

function db(level) { return level > 1e-6 ? 20 * Math.log10(level) : -120; }
function fmt(x, digits) { return x === null || x === undefined ? "–" : Number(x).toFixed(digits); }
function duration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  return (d ? d + " d " : "") + (d || h ? h + " h " : "") + m + " min " + (d ? "" : (s % 60) + " s");
}

function send(changes) {
  Object.assign(queued, changes);
  requestAnimationFrame(() => {
    if (Object.keys(queued).length && ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(queued));
    }
    queued = {};
  });
}

function fill(select, names) {
  select.replaceChildren(...names.map((n) => { const o = document.createElement("option"); o.value = o.textContent = n; return o; }));
}

function choices(c) {
  for (const name of ["intensity", "mix", "gain_db"]) {
    $(name).min = c.ranges[name][0];
    $(name).max = c.ranges[name][1];
  }
  fill($("preset"), ["—"].concat(c.presets));
  fill($("target"), c.targets);
  $("feedback-row").hidden = !c.feedback;
}

function row(list, term, value) {
  const dt = document.createElement("dt"), dd = document.createElement("dd");
  dt.textContent = term;
  dd.textContent = value;
  list.append(dt, dd);
}

function status(s) {
  if (!s.controls) return;
  const state = $("state");
  state.textContent = s.state;
  state.className = "state " + (s.state === "dreaming" ? "dreaming" : s.state.startsWith("dry") ? "dry"
    : s.state.startsWith("scheduled") ? "off" : "bad");
  for (const [id, level] of [["in", s.input_peak], ["out", s.output_peak]]) {
    $(id).value = Math.max(-60, db(level));
    $(id + "-db").textContent = fmt(db(level), 1) + " dB";
  }
  const now = performance.now();
  const values = Object.assign({}, s.controls, s.feedback ? { feedback: s.feedback.share } : {});
  for (const name of SLIDERS) {
    if (values[name] === undefined) continue;
    if (!(now - (touched[name] || 0) < 1000)) $(name).value = values[name];
    $(name + "-v").textContent = fmt($(name).value, name === "gain_db" ? 1 : 2);
  }
  if (!(now - (touched.target || 0) < 1000)) $("target").value = s.controls.target;
  if (!(now - (touched.preset || 0) < 1000)) $("preset").value = s.controls.preset || "—";
  if (!(now - (touched.freeze || 0) < 1000)) $("freeze").checked = s.controls.freeze;

  const list = document.createElement("dl");
  list.id = "counters";
  row(list, "up", duration(s.elapsed_s));
  row(list, "windows", `${s.windows_dreamed} dreamed, ${s.late_windows} late, ${s.failed_windows} failed`);
  row(list, "real time", s.real_time_factor === null || s.real_time_factor === undefined ? "–"
    : `${fmt(s.real_time_factor, 2)} x (last dream ${fmt(s.dream_last_s, 1)} s)`);
  row(list, "xruns", `${s.xruns} (slow callbacks ${s.slow_callbacks}; p99.9 ${fmt(100 * (s.callback_p999 || 0), 1)}% of a block)`);
  row(list, "worker restarts", s.worker_restarts);
  row(list, "callback errors", s.callback_errors);
  row(list, "latency", fmt(s.latency_s, 2) + " s");
  if (s.recording) {
    const r = s.recording;
    row(list, "recording", `${duration(r.seconds)}, ${r.bytes === null ? "–" : fmt(r.bytes / 1e6, 1) + " MB"}, disk for ${duration(r.disk_left_s)}`
      + (r.error ? `; stopped: ${r.error}` : ""));
  }
  if (s.feedback) {
    row(list, "feedback", `${fmt(s.feedback.share, 2)} asked, ${fmt(s.feedback.effective, 2)} in effect`
      + (s.feedback.pullbacks !== undefined ? `, ${s.feedback.pullbacks} pull-backs` : ""));
  }
  if (s.schedule) row(list, "schedule", `${s.schedule.start}–${s.schedule.stop}, ${s.schedule.open ? "open" : "closed"}`);
  $("counters").replaceWith(list);
  $("log").textContent = s.log.join("\n");
}

function connect() {
  ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onmessage = (event) => {
    const m = JSON.parse(event.data);
    if (m.choices) choices(m.choices);
    if (m.status) status(m.status);
    if (m.error) $("error").textContent = m.error;
    if (m.picture !== undefined) {
      $("picture").src = "/picture.png?window=" + m.picture;
      $("picture-caption").textContent = `window ${m.picture}: input (top), as dreamed, and the change (bottom); low notes at the bottom of each`;
      $("picture-card").hidden = false;
    }
  };
  ws.onclose = () => {
    $("state").textContent = "not connected (retrying)";
    $("state").className = "state bad";
    setTimeout(connect, 1000);
  };
}

function wire() {
  for (const name of SLIDERS) {
    $(name).addEventListener("input", () => {
      touched[name] = performance.now();
      $(name + "-v").textContent = fmt($(name).value, name === "gain_db" ? 1 : 2);
      send({ [name]: Number($(name).value) });
    });
  }
  $("target").addEventListener("change", () => { touched.target = performance.now(); send({ target: $("target").value }); });
  $("preset").addEventListener("change", () => {
    touched.preset = performance.now();
    if ($("preset").value !== "—") send({ preset: $("preset").value });
  });
  $("freeze").addEventListener("change", () => { touched.freeze = performance.now(); send({ freeze: $("freeze").checked }); });
  $("panic").addEventListener("click", () => { touched.mix = performance.now(); $("mix").value = 0; send({ panic: true }); });
  connect();
}

wire();
