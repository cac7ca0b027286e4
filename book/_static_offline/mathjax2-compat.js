/* The Jupyter widgets HTML manager typesets widget labels with the MathJax 2 call
 * MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]). This book runs MathJax 3, which has
 * no Hub: without this shim, every widget label throws a TypeError in the console.
 * Loaded deferred, right after MathJax 3 (scripts/sphinx_offline.py). */
(function () {
  "use strict";
  var mj = window.MathJax;
  if (!mj || mj.Hub) {
    return; // no math on this page, or a real MathJax 2
  }
  mj.Hub = {
    Queue: function (job) {
      var element = job && job[2];
      var current = window.MathJax;
      if (!element || !current || !current.startup || !current.startup.promise) {
        return; // MathJax 3 did not load: nothing can typeset the label
      }
      current.startup.promise
        .then(function () { return current.typesetPromise([element]); })
        .catch(function (err) { console.warn("MathJax could not typeset a widget label:", err); });
    },
  };
})();
