/* The page side of the draw-a-digit explorer (cnn_lib.teaching.widgets.draw.explorer_html): the
   pen on the canvas, then CnnDraw (draw-core.js) on what was drawn, and the results painted.
   Python replaces the two placeholders: the root element's id and the pen width in pixels. */
(function () {
  var root = document.getElementById("__UID__");
  if (!root || root.dataset.ready) return;
  root.dataset.ready = "1";
  var net = CnnDraw.load(JSON.parse(root.querySelector("script.cnn-draw-net").textContent));
  var canvas = root.querySelector("canvas.cnn-draw-canvas"), ctx = canvas.getContext("2d");
  var S = canvas.width, PEN = __PEN__, drawing = false, last = null, pending = false;
  function clear() {
    ctx.fillStyle = "white"; ctx.fillRect(0, 0, S, S);
    root.querySelector(".cnn-draw-msg").textContent = "Draw a digit in the box.";
    root.querySelectorAll(".cnn-draw-bar").forEach(function (b) { b.style.height = "0%"; });
    root.querySelectorAll(".cnn-draw-p").forEach(function (b) { b.textContent = ""; });
    root.querySelectorAll("canvas.cnn-draw-map, canvas.cnn-draw-small").forEach(function (c) {
      c.getContext("2d").clearRect(0, 0, c.width, c.height);
    });
  }
  function pos(e) {
    var r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * S / r.width, (e.clientY - r.top) * S / r.height];
  }
  function dot(p) { ctx.fillStyle = "black"; ctx.beginPath(); ctx.arc(p[0], p[1], PEN / 2, 0, 2 * Math.PI); ctx.fill(); }
  canvas.addEventListener("pointerdown", function (e) {
    drawing = true; last = pos(e); dot(last); canvas.setPointerCapture(e.pointerId); schedule(); e.preventDefault();
  });
  canvas.addEventListener("pointermove", function (e) {
    if (!drawing) return;
    var p = pos(e);
    ctx.strokeStyle = "black"; ctx.lineWidth = PEN; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(last[0], last[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
    last = p; schedule(); e.preventDefault();
  });
  ["pointerup", "pointercancel", "pointerleave"].forEach(function (ev) {
    canvas.addEventListener(ev, function () { if (drawing) { drawing = false; schedule(); } });
  });
  root.querySelector("button.cnn-draw-clear").addEventListener("click", clear);
  function schedule() { if (!pending) { pending = true; requestAnimationFrame(function () { pending = false; update(); }); } }
  function paint(c, data, h, w, offset) {      // grayscale map, scaled to its own range
    var lo = Infinity, hi = -Infinity;
    for (var k = 0; k < h * w; k++) { lo = Math.min(lo, data[offset + k]); hi = Math.max(hi, data[offset + k]); }
    c.width = w; c.height = h;
    var g = c.getContext("2d"), img = g.createImageData(w, h);
    for (var k2 = 0; k2 < h * w; k2++) {
      var v = hi > lo ? Math.round(255 * (data[offset + k2] - lo) / (hi - lo)) : 0;
      img.data[4 * k2] = img.data[4 * k2 + 1] = img.data[4 * k2 + 2] = v; img.data[4 * k2 + 3] = 255;
    }
    g.putImageData(img, 0, 0);
  }
  function update() {
    var px = ctx.getImageData(0, 0, S, S).data, ink = new Float64Array(S * S);
    for (var k = 0; k < S * S; k++) ink[k] = (px[4 * k + 3] / 255) * (1 - (px[4 * k] + px[4 * k + 1] + px[4 * k + 2]) / 765);
    var pre = CnnDraw.preprocess(ink, S, S);
    if (!pre) { clear(); return; }
    paint(root.querySelector("canvas.cnn-draw-small"), pre.centred, 28, 28, 0);
    var outs = CnnDraw.forward(net, pre.x), probs = CnnDraw.softmax(outs[outs.length - 1].data);
    var best = probs.indexOf(Math.max.apply(null, probs));
    root.querySelectorAll(".cnn-draw-bar").forEach(function (b, i) {
      b.style.height = (100 * probs[i]).toFixed(1) + "%";
      b.style.background = i === best ? "#D55E00" : "#0072B2";
    });
    root.querySelectorAll(".cnn-draw-p").forEach(function (b, i) { b.textContent = probs[i] >= 0.005 ? Math.round(100 * probs[i]) + "%" : ""; });
    root.querySelector(".cnn-draw-msg").textContent = "The network reads a " + best + " (" + (100 * probs[best]).toFixed(1) + "%).";
    root.querySelectorAll(".cnn-draw-row").forEach(function (row) {
      var k = +row.dataset.layer, o = outs[k], n = o.shape[1] * o.shape[2];
      row.querySelectorAll("canvas.cnn-draw-map").forEach(function (c, f) { paint(c, o.data, o.shape[1], o.shape[2], f * n); });
    });
  }
  clear();
})();
