/* The core of the draw-a-digit explorer (cnn_lib.teaching.widgets.draw): the preprocessing of
   draw.preprocess and the forward pass of the network, in plain JavaScript (no DOM), exported
   with module.exports under Node.js for the tests. Python replaces the five placeholders of the
   first lines by its own constants (draw.BOX, draw.FIELD, draw.INK_THRESHOLD, and MNIST's mean
   and standard deviation from cnn_lib.data), so the two sides cannot drift apart. */
var CnnDraw = (function () {
  "use strict";
  var BOX = __BOX__, FIELD = __FIELD__, THRESHOLD = __THRESHOLD__, MEAN = __MEAN__, STD = __STD__;

  function decode(b64) {                       // base64 little-endian float32 -> Float32Array
    var bin = atob(b64), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  }

  function areaWeights(nIn, nOut) {            // (nOut x nIn): share of input pixel k in output pixel i
    var W = [], step = nIn / nOut;
    for (var i = 0; i < nOut; i++) {
      var lo = i * step, hi = (i + 1) * step, row = new Float64Array(nIn), total = 0;
      for (var k = Math.floor(lo); k < Math.min(nIn, Math.ceil(hi)); k++) {
        var o = Math.max(0, Math.min(hi, k + 1) - Math.max(lo, k));
        row[k] = o; total += o;
      }
      for (var k2 = 0; k2 < nIn; k2++) row[k2] /= total;
      W.push(row);
    }
    return W;
  }

  function resize(img, h, w, rows, cols) {     // area averaging, img row-major (h x w)
    var A = areaWeights(h, rows), B = areaWeights(w, cols), tmp = new Float64Array(rows * w);
    for (var i = 0; i < rows; i++) for (var k = 0; k < h; k++) {
      var a = A[i][k]; if (a === 0) continue;
      for (var c = 0; c < w; c++) tmp[i * w + c] += a * img[k * w + c];
    }
    var out = new Float64Array(rows * cols);
    for (var i2 = 0; i2 < rows; i2++) for (var j = 0; j < cols; j++) {
      var s = 0, Bj = B[j];
      for (var c2 = 0; c2 < w; c2++) s += tmp[i2 * w + c2] * Bj[c2];
      out[i2 * cols + j] = Math.min(1, Math.max(0, s));
    }
    return out;
  }

  function roundHalfEven(v) {                  // Python's round()
    var r = Math.round(v);
    if (Math.abs(v % 1) === 0.5 && r % 2 !== 0) r -= 1;
    return r;
  }

  function preprocess(ink, H, W) {             // ink: Float64Array/Float32Array H*W in [0, 1]
    var top = H, bottom = -1, left = W, right = -1;
    for (var r = 0; r < H; r++) for (var c = 0; c < W; c++) if (ink[r * W + c] > THRESHOLD) {
      if (r < top) top = r; if (r > bottom) bottom = r; if (c < left) left = c; if (c > right) right = c;
    }
    if (bottom < 0) return null;
    var h = bottom - top + 1, w = right - left + 1, cropped = new Float64Array(h * w);
    for (var r2 = 0; r2 < h; r2++) for (var c2 = 0; c2 < w; c2++) cropped[r2 * w + c2] = ink[(top + r2) * W + left + c2];
    var scale = BOX / Math.max(h, w);
    var rows = Math.max(1, roundHalfEven(h * scale)), cols = Math.max(1, roundHalfEven(w * scale));
    var scaled = resize(cropped, h, w, rows, cols), total = 0, mr = 0, mc = 0;
    for (var i = 0; i < rows; i++) for (var j = 0; j < cols; j++) {
      var v = scaled[i * cols + j]; total += v; mr += v * i; mc += v * j;
    }
    var centre = Math.floor(FIELD / 2);
    var offR = Math.min(FIELD - rows, Math.max(0, roundHalfEven(centre - mr / total)));
    var offC = Math.min(FIELD - cols, Math.max(0, roundHalfEven(centre - mc / total)));
    var centred = new Float64Array(FIELD * FIELD);
    for (var i3 = 0; i3 < rows; i3++) for (var j3 = 0; j3 < cols; j3++) centred[(offR + i3) * FIELD + offC + j3] = scaled[i3 * cols + j3];
    var x = new Float32Array(FIELD * FIELD);
    for (var k = 0; k < x.length; k++) x[k] = (centred[k] - MEAN) / STD;
    return {bbox: [top, bottom + 1, left, right + 1], rows: rows, cols: cols, offset: [offR, offC],
            centred: centred, x: x};
  }

  function load(spec) {                        // decode the weights once
    return spec.map(function (L) {
      var o = {}; for (var k in L) o[k] = L[k];
      if (L.w) { o.w = decode(L.w); o.b = decode(L.b); }
      return o;
    });
  }

  function forward(net, x) {                   // x: Float32Array (1, 28, 28); returns every layer's output
    var t = {data: x, shape: [1, FIELD, FIELD]}, outs = [];
    net.forEach(function (L) {
      var d = t.data, s = t.shape, y, shape;
      if (L.type === "conv") {
        var F = L.shape[0], C = L.shape[1], K = L.shape[2], st = L.stride, p = L.padding;
        var H = s[1], W = s[2], Ho = Math.floor((H + 2 * p - K) / st) + 1, Wo = Math.floor((W + 2 * p - K) / st) + 1;
        y = new Float32Array(F * Ho * Wo); shape = [F, Ho, Wo];
        for (var f = 0; f < F; f++) for (var i = 0; i < Ho; i++) for (var j = 0; j < Wo; j++) {
          var acc = L.b[f];
          for (var c = 0; c < C; c++) for (var u = 0; u < K; u++) {
            var r = i * st + u - p; if (r < 0 || r >= H) continue;
            for (var v = 0; v < K; v++) {
              var q = j * st + v - p; if (q < 0 || q >= W) continue;
              acc += L.w[((f * C + c) * K + u) * K + v] * d[(c * H + r) * W + q];
            }
          }
          y[(f * Ho + i) * Wo + j] = acc;
        }
      } else if (L.type === "pool") {
        var C2 = s[0], H2 = s[1], W2 = s[2], k2 = L.size, st2 = L.stride;
        var Ho2 = Math.floor((H2 - k2) / st2) + 1, Wo2 = Math.floor((W2 - k2) / st2) + 1;
        y = new Float32Array(C2 * Ho2 * Wo2); shape = [C2, Ho2, Wo2];
        for (var c3 = 0; c3 < C2; c3++) for (var i2 = 0; i2 < Ho2; i2++) for (var j2 = 0; j2 < Wo2; j2++) {
          var m = -Infinity;
          for (var u2 = 0; u2 < k2; u2++) for (var v2 = 0; v2 < k2; v2++)
            m = Math.max(m, d[(c3 * H2 + i2 * st2 + u2) * W2 + j2 * st2 + v2]);
          y[(c3 * Ho2 + i2) * Wo2 + j2] = m;
        }
      } else if (L.type === "relu") {
        y = d.map(function (v3) { return v3 > 0 ? v3 : 0; }); shape = s;
      } else if (L.type === "flatten") {
        y = d; shape = [d.length];
      } else if (L.type === "dense") {
        var D = L.shape[0], M = L.shape[1];
        y = new Float32Array(M); shape = [M];
        for (var mm = 0; mm < M; mm++) {
          var a2 = L.b[mm];
          for (var dd = 0; dd < D; dd++) a2 += d[dd] * L.w[dd * M + mm];
          y[mm] = a2;
        }
      }
      t = {data: y, shape: shape}; outs.push({name: L.name, type: L.type, data: y, shape: shape});
    });
    return outs;
  }

  function softmax(z) {                        // shifted by the max: finite for any logits
    var m = Math.max.apply(null, Array.from(z)), e = Array.from(z, function (v) { return Math.exp(v - m); });
    var s = e.reduce(function (a, b) { return a + b; }, 0);
    return e.map(function (v) { return v / s; });
  }

  return {decode: decode, resize: resize, preprocess: preprocess, load: load, forward: forward, softmax: softmax};
})();
if (typeof module !== "undefined" && module.exports) module.exports = CnnDraw;
