/* Learning-curves slider (cnn_lib.teaching.widgets.generalization.curves_slider_html): shows the
   picture of the run the slider selects. Python replaces the placeholder below by the root
   element's id. */
(function () {
  var root = document.getElementById("__UID__");
  var slider = root.querySelector(".knob"), out = root.querySelector(".knob-out");
  var frames = root.querySelectorAll(".frames img");
  function show() {
    for (var i = 0; i < frames.length; i++) frames[i].style.display = i === +slider.value ? "block" : "none";
    out.textContent = frames[+slider.value].alt.replace("Learning curves for ", "");
  }
  slider.addEventListener("input", show);
  show();
})();
