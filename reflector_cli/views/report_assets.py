"""The HTML report's inline stylesheet and script (kept apart from the renderer so both stay
readable). Nothing here refers to a network resource."""

from __future__ import annotations

CSS = """
:root { --fg:#1d2330; --muted:#667085; --line:#e4e7ec; --accent:#3b5bdb; --bg:#fff; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: #f6f7f9; margin: 0; }
main { max-width: 980px; margin: 0 auto; padding: 24px 20px 60px; }
section { background: var(--bg); border: 1px solid var(--line); border-radius: 10px;
  padding: 16px 20px; margin: 16px 0; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 17px; margin: 0 0 10px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
.meta { color: var(--muted); margin: 0; }
.people { list-style: none; padding: 0; margin: 0; }
.people li { display: grid; grid-template-columns: 180px 1fr 110px; gap: 10px;
  align-items: center; padding: 3px 0; }
.people .who { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.people svg { height: 12px; }
.people .num { color: var(--muted); text-align: right; font-variant-numeric: tabular-nums; }
svg { display: block; width: 100%; height: auto; }
svg .peak { fill: #98a2b3; }
svg .marker { stroke: #f59f00; stroke-width: 2; }
svg .marker-label { fill: #b35c00; font: 600 13px system-ui, sans-serif; }
svg .playhead { stroke: #e03131; stroke-width: 2; }
svg .lane-bg { fill: #f2f4f7; }
svg .lane-name { fill: var(--fg); font: 13px system-ui, sans-serif; }
svg .bar-bg { fill: #eef0f3; }
.clickable { cursor: pointer; }
audio { width: 100%; margin-top: 10px; }
.note { background: #fff4e6; border: 1px solid #ffd8a8; border-radius: 8px; padding: 8px 12px; }
.ts { font: 600 13px ui-monospace, SFMono-Regular, Menlo, monospace; color: var(--accent);
  background: none; border: 0; padding: 0 4px 0 0; cursor: pointer; }
.ts:hover { text-decoration: underline; }
.topics li { margin: 6px 0; }
.turn { margin: 6px 0; padding: 2px 6px; border-radius: 6px; }
.turn.now { background: #edf2ff; }
.turn .who { font-weight: 600; }
.summary p { margin: 6px 0; }
.empty { color: var(--muted); font-style: italic; }
footer { color: var(--muted); font-size: 12px; text-align: center; }
"""

JS = """
(function () {
  var player = document.getElementById('player');
  var duration = parseFloat(document.body.getAttribute('data-duration')) || 0;
  function seek(t) {
    if (!player) { return; }
    player.currentTime = t;
    var p = player.play();
    if (p && p.catch) { p.catch(function () {}); }
  }
  document.addEventListener('click', function (ev) {
    var el = ev.target.closest('[data-t]');
    if (el) { ev.preventDefault(); seek(parseFloat(el.getAttribute('data-t')) || 0); }
  });
  document.querySelectorAll('svg.seekable').forEach(function (svg) {
    svg.addEventListener('click', function (ev) {
      if (ev.target.closest('[data-t]') || !duration) { return; }
      var box = svg.getBoundingClientRect();
      var x0 = parseFloat(svg.getAttribute('data-x0')) || 0;
      var vb = svg.viewBox.baseVal;
      var x = (ev.clientX - box.left) / box.width * vb.width;
      var w = vb.width - x0;
      seek(Math.max(0, Math.min(1, (x - x0) / w)) * duration);
    });
  });
  if (!player) { return; }
  var turns = Array.prototype.slice.call(document.querySelectorAll('.turn'));
  var heads = document.querySelectorAll('.playhead');
  player.addEventListener('error', function () {
    var n = document.getElementById('audio-missing');
    if (n) { n.hidden = false; }
  });
  player.addEventListener('timeupdate', function () {
    var t = player.currentTime;
    heads.forEach(function (h) {
      var svg = h.ownerSVGElement, x0 = parseFloat(svg.getAttribute('data-x0')) || 0;
      var w = svg.viewBox.baseVal.width - x0;
      var x = x0 + (duration ? Math.min(1, t / duration) : 0) * w;
      h.setAttribute('x1', x); h.setAttribute('x2', x);
    });
    turns.forEach(function (el) {
      var s = parseFloat(el.getAttribute('data-start'));
      var e = parseFloat(el.getAttribute('data-end'));
      el.classList.toggle('now', t >= s && t < e);
    });
  });
})();
"""
