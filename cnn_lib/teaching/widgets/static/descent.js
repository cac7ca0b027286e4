/* Gradient-descent explorer (cnn_lib.teaching.widgets.mlp.descent_explorer_html): draws the
   precomputed run chosen with the controls, up to the chosen step, over the contour plot.
   Python replaces the two placeholders below: the root element's id, and the JSON of the runs
   ({lrs, starts, steps, clip, color, runs: [lr][start] -> {px, w, cost, status}}). */
(function () {
  var root = document.getElementById("__UID__");
  var data = __DATA__;
  var ctx = root.querySelector("canvas").getContext("2d");
  var lr = root.querySelector(".lr"), start = root.querySelector(".start"), steps = root.querySelector(".steps");
  function draw() {
    var run = data.runs[+lr.value][+start.value];
    var last = Math.min(+steps.value, run.px.length - 1);
    ctx.clearRect(0, 0, ctx.canvas.width, ctx.canvas.height);
    ctx.save();
    ctx.beginPath(); ctx.rect(data.clip[0], data.clip[1], data.clip[2], data.clip[3]); ctx.clip();
    ctx.lineJoin = "round";
    [["#ffffff", 4], [data.color, 2]].forEach(function (style) {
      ctx.strokeStyle = style[0]; ctx.lineWidth = style[1]; ctx.beginPath();
      for (var i = 0; i <= last; i++) {
        if (i === 0) ctx.moveTo(run.px[i][0], run.px[i][1]); else ctx.lineTo(run.px[i][0], run.px[i][1]);
      }
      ctx.stroke();
    });
    ctx.fillStyle = data.color; ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 1.5;
    for (var i = 0; i <= last; i++) {
      ctx.beginPath(); ctx.arc(run.px[i][0], run.px[i][1], i === 0 || i === last ? 5 : 2.5, 0, 2 * Math.PI);
      ctx.fill(); ctx.stroke();
    }
    ctx.restore();
    root.querySelector(".lr-out").textContent = data.lrs[+lr.value];
    root.querySelector(".steps-out").textContent = steps.value;
    var w = run.w[last], text = "after " + last + " step" + (last === 1 ? "" : "s") + ": w = (" +
      w[0].toFixed(2) + ", " + w[1].toFixed(2) + "), cost " + run.cost[last].toPrecision(3);
    if (run.status && +steps.value >= run.px.length - 1) text += " \u2014 " + run.status;
    root.querySelector(".readout").textContent = text;
  }
  [lr, start, steps].forEach(function (el) { el.addEventListener("input", draw); });
  draw();
})();
