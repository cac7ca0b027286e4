/* Stride / padding explorer of "Convolutional Neural Networks from Scratch" (cnn_lib).
   Vanilla JavaScript, no dependencies. The numbers it shows come from the JSON that
   cnn_lib.teaching.widgets.conv.explorer_data computed with cnn_lib; this code only looks them up,
   slices the feature maps and draws. */
(function (global) {
  "use strict";
  var PARAMS = ["n", "k", "s", "p", "d"];

  function bytesFromBase64(s) {
    var bin = typeof atob === "function" ? atob(s) : Buffer.from(s, "base64").toString("binary");
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function key(p) { return [p.n, p.k, p.s, p.p, p.d].join(","); }

  function span(k, d) { return d * (k - 1) + 1; }

  /* {valid, nOut, macs} or {valid: false, message} for a setting. */
  function lookup(data, p) {
    var c = data.combos[key(p)];
    if (c === undefined) {
      return {valid: false, message: "This setting is outside the explorer's ranges."};
    }
    if (typeof c === "string") return {valid: false, message: c};
    return {valid: true, nOut: c[0], macs: c[1]};
  }

  var baseCache = {};
  function baseMap(data, n, k, d) {
    var id = n + "," + k + "," + d, entry = data.base[id];
    if (!entry) return null;
    var cacheKey = id + "/" + entry.data.length + "/" + entry.lo;
    if (baseCache[cacheKey]) return baseCache[cacheKey];
    var bytes = bytesFromBase64(entry.data), m = entry.size, values = new Float64Array(m * m);
    for (var i = 0; i < m * m; i++) {
      var code = bytes[2 * i] | (bytes[2 * i + 1] << 8);
      values[i] = entry.lo + (entry.hi - entry.lo) * code / 65535;
    }
    var res = {size: m, values: values, vmax: entry.vmax};
    baseCache[cacheKey] = res;
    return res;
  }

  /* The feature map of a setting: rows and columns o, o+s, ..., of the base map, o = pad_base - p. */
  function outputMap(data, p) {
    var st = lookup(data, p);
    if (!st.valid) return null;
    var base = baseMap(data, p.n, p.k, p.d);
    if (!base) return null;
    var o = data.pad_base - p.p, nOut = st.nOut, values = new Float64Array(nOut * nOut);
    for (var i = 0; i < nOut; i++) {
      for (var j = 0; j < nOut; j++) {
        values[i * nOut + j] = base.values[(o + i * p.s) * base.size + (o + j * p.s)];
      }
    }
    return {size: nOut, values: values, vmax: base.vmax};
  }

  function inputImage(data, n) {
    var bytes = bytesFromBase64(data.images[String(n)]), values = new Float64Array(n * n);
    for (var i = 0; i < n * n; i++) values[i] = bytes[i] / 255;
    return values;
  }

  /* Top-left corners (padded coordinates) of the windows, in scan order. */
  function positions(nOut, s) {
    var out = [];
    for (var i = 0; i < nOut; i++) for (var j = 0; j < nOut; j++) out.push([i * s, j * s]);
    return out;
  }

  /* The cells a k x k kernel dilated by d touches when its window starts at (r0, c0). */
  function taps(r0, c0, k, d) {
    var out = [];
    for (var u = 0; u < k; u++) for (var v = 0; v < k; v++) out.push([r0 + u * d, c0 + v * d]);
    return out;
  }

  function formula(p, st) {
    var sub = p.d > 1 ? p.d + "·(" + p.k + " − 1) − 1" : String(p.k);
    var lhs = "⌊(" + p.n + " + 2·" + p.p + " − " + sub + ") / " + p.s + "⌋ + 1";
    return st.valid ? lhs + " = " + st.nOut : lhs + " < 1: no window fits";
  }

  function fmtInt(v) { return String(v).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }

  /* RdBu-like diverging colour for t in [-1, 1]. */
  function diverging(t) {
    t = Math.max(-1, Math.min(1, t));
    var lo = [33, 102, 172], mid = [247, 247, 247], hi = [178, 24, 43], a = t < 0 ? lo : hi, f = Math.abs(t);
    var c = [0, 1, 2].map(function (i) { return Math.round(mid[i] + (a[i] - mid[i]) * f); });
    return "rgb(" + c.join(",") + ")";
  }

  function drawInput(ctx, size, img, p, st, pos, step) {
    var m = p.n + 2 * p.p, cell = size / m;
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, size, size);
    for (var r = 0; r < m; r++) {
      for (var c = 0; c < m; c++) {
        var inside = r >= p.p && r < p.p + p.n && c >= p.p && c < p.p + p.n;
        if (inside) {
          var g = Math.round(255 * img[(r - p.p) * p.n + (c - p.p)]);
          ctx.fillStyle = "rgb(" + g + "," + g + "," + g + ")";
        } else {
          ctx.fillStyle = "#cde7f5";
        }
        ctx.fillRect(c * cell, r * cell, cell, cell);
        if (!inside && cell >= 16) {
          ctx.fillStyle = "#336";
          ctx.font = Math.round(cell * 0.5) + "px sans-serif";
          ctx.textAlign = "center";
          ctx.textBaseline = "middle";
          ctx.fillText("0", (c + 0.5) * cell, (r + 0.5) * cell);
        }
      }
    }
    ctx.strokeStyle = "rgba(120,120,120,0.6)";
    ctx.lineWidth = 1;
    for (var i = 0; i <= m; i++) {
      ctx.beginPath(); ctx.moveTo(i * cell, 0); ctx.lineTo(i * cell, size); ctx.stroke();
      ctx.beginPath(); ctx.moveTo(0, i * cell); ctx.lineTo(size, i * cell); ctx.stroke();
    }
    if (!st.valid || !pos.length) return;
    var at = pos[step], sp = span(p.k, p.d);
    ctx.setLineDash([4, 3]);
    ctx.strokeStyle = "#E69F00";
    ctx.lineWidth = 1.5;
    ctx.strokeRect(at[1] * cell, at[0] * cell, sp * cell, sp * cell);
    ctx.setLineDash([]);
    var t = taps(at[0], at[1], p.k, p.d);
    ctx.fillStyle = "rgba(230,159,0,0.45)";
    ctx.lineWidth = Math.max(2, cell / 8);
    for (var q = 0; q < t.length; q++) {
      ctx.fillRect(t[q][1] * cell, t[q][0] * cell, cell, cell);
      ctx.strokeRect(t[q][1] * cell, t[q][0] * cell, cell, cell);
    }
  }

  function drawOutput(ctx, size, map, st, step) {
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, size, size);
    if (!st.valid || !map) {
      ctx.strokeStyle = "#D55E00"; ctx.lineWidth = 4;
      ctx.beginPath(); ctx.moveTo(20, 20); ctx.lineTo(size - 20, size - 20);
      ctx.moveTo(size - 20, 20); ctx.lineTo(20, size - 20); ctx.stroke();
      return;
    }
    var m = map.size, cell = Math.min(size / m, 48), vmax = map.vmax > 0 ? map.vmax : 1;
    for (var i = 0; i < m; i++) {
      for (var j = 0; j < m; j++) {
        var idx = i * m + j;
        ctx.fillStyle = idx <= step ? diverging(map.values[idx] / vmax) : "#c8c8c8";
        ctx.fillRect(j * cell, i * cell, cell, cell);
      }
    }
    ctx.strokeStyle = "rgba(120,120,120,0.6)"; ctx.lineWidth = 1;
    for (var g = 0; g <= m; g++) {
      ctx.beginPath(); ctx.moveTo(g * cell, 0); ctx.lineTo(g * cell, m * cell); ctx.stroke();
      ctx.beginPath(); ctx.moveTo(0, g * cell); ctx.lineTo(m * cell, g * cell); ctx.stroke();
    }
    var ci = Math.floor(step / m), cj = step % m;
    ctx.strokeStyle = "#E69F00"; ctx.lineWidth = Math.max(2, cell / 8);
    ctx.strokeRect(cj * cell, ci * cell, cell, cell);
  }

  function mount(root, data) {
    if (!root || root.getAttribute("data-ready") === "1") return null;
    function q(sel) { return root.querySelector(sel); }
    var inputs = {}, labels = {};
    var found = root.querySelectorAll("input[data-param]");
    for (var i = 0; i < found.length; i++) inputs[found[i].getAttribute("data-param")] = found[i];
    var outs = root.querySelectorAll("output[data-param]");
    for (var o = 0; o < outs.length; o++) labels[outs[o].getAttribute("data-param")] = outs[o];
    var el = {
      outSize: q(".cnn-explorer-out-size"), formula: q(".cnn-explorer-formula"),
      macs: q(".cnn-explorer-macs"), message: q(".cnn-explorer-message"),
      position: q(".cnn-explorer-position"), value: q(".cnn-explorer-value"),
      same: q(".cnn-explorer-same"), play: q(".cnn-explorer-play"), step: q("input[data-role=step]"),
      cin: q("canvas.cnn-explorer-input"), cout: q("canvas.cnn-explorer-output")
    };
    var S = {params: null, st: null, map: null, img: null, pos: [], step: 0, playing: true, hold: 0, timer: null};

    function readParams() {
      var p = {};
      PARAMS.forEach(function (name) { p[name] = parseInt(inputs[name].value, 10); });
      return p;
    }

    function draw() {
      var p = S.params, st = S.st;
      if (el.cin && el.cin.getContext) drawInput(el.cin.getContext("2d"), el.cin.width, S.img, p, st, S.pos, S.step);
      if (el.cout && el.cout.getContext) drawOutput(el.cout.getContext("2d"), el.cout.width, S.map, st, S.step);
      if (st.valid) {
        var at = S.pos[S.step], i = Math.floor(S.step / st.nOut), j = S.step % st.nOut, sp = span(p.k, p.d);
        el.position.textContent = "window " + (S.step + 1) + " of " + S.pos.length + ": output [" + i + ", " + j +
          "] reads padded rows " + at[0] + "–" + (at[0] + sp - 1) + ", columns " + at[1] + "–" + (at[1] + sp - 1);
        var shown = S.map.values[S.step].toFixed(3);
        el.value.textContent = shown === "-0.000" ? "0.000" : shown;
        if (el.step) el.step.value = String(S.step);
      } else {
        el.position.textContent = "—";
        el.value.textContent = "—";
      }
    }

    function schedule() {
      if (S.timer !== null) { clearInterval(S.timer); S.timer = null; }
      if (!S.playing || !S.st.valid) return;
      var interval = Math.max(25, Math.min(400, Math.round(6000 / S.pos.length)));
      S.timer = setInterval(tick, interval);
    }

    function tick() {
      if (!S.playing || !S.st.valid) return;
      if (S.step < S.pos.length - 1) { S.step += 1; S.hold = 0; }
      else if (S.hold < 8) { S.hold += 1; return; }
      else { S.step = 0; S.hold = 0; }
      draw();
    }

    function setPlaying(on) {
      S.playing = on;
      if (el.play) el.play.textContent = on ? "❚❚ Pause" : "▶ Play";
      schedule();
    }

    function update() {
      var p = readParams();
      S.params = p;
      PARAMS.forEach(function (name) { if (labels[name]) labels[name].textContent = String(p[name]); });
      var st = lookup(data, p);
      S.st = st;
      S.img = inputImage(data, p.n);
      root.setAttribute("data-out-size", st.valid ? String(st.nOut) : "");
      el.formula.textContent = formula(p, st);
      if (st.valid) {
        S.map = outputMap(data, p);
        S.pos = positions(st.nOut, p.s);
        S.step = S.playing ? 0 : S.pos.length - 1;
        S.hold = 0;
        el.outSize.textContent = String(st.nOut);
        el.macs.textContent = fmtInt(st.macs);
        el.message.textContent = "";
        el.message.hidden = true;
        el.same.hidden = st.nOut !== p.n;
        root.classList.remove("cnn-explorer-invalid");
        if (el.step) { el.step.max = String(S.pos.length - 1); el.step.disabled = false; }
      } else {
        S.map = null; S.pos = []; S.step = 0;
        el.outSize.textContent = "—";
        el.macs.textContent = "—";
        el.message.textContent = st.message;
        el.message.hidden = false;
        el.same.hidden = true;
        root.classList.add("cnn-explorer-invalid");
        if (el.step) { el.step.max = "0"; el.step.value = "0"; el.step.disabled = true; }
      }
      draw();
      schedule();
    }

    PARAMS.forEach(function (name) {
      inputs[name].addEventListener("input", update);
      inputs[name].addEventListener("change", update);
    });
    if (el.step) {
      el.step.addEventListener("input", function () {
        if (!S.st.valid) return;
        S.step = Math.max(0, Math.min(S.pos.length - 1, parseInt(el.step.value, 10) || 0));
        setPlaying(false);
        draw();
      });
    }
    if (el.play) el.play.addEventListener("click", function () { setPlaying(!S.playing); });
    update();
    setPlaying(true);
    root.setAttribute("data-ready", "1");
    return {update: update, tick: tick, state: S, setPlaying: setPlaying};
  }

  var api = {version: 1, key: key, span: span, lookup: lookup, outputMap: outputMap, inputImage: inputImage,
             positions: positions, taps: taps, formula: formula, mount: mount};
  if (!global.CNNExplorer) global.CNNExplorer = api;
  if (typeof module !== "undefined" && module.exports) module.exports = api;
})(typeof window !== "undefined" ? window : globalThis);
