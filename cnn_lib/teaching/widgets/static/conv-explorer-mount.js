/* Starts one stride / padding explorer (cnn_lib.teaching.widgets.conv.explorer_html). Python
   replaces the placeholder below by the root element's id; the data is the JSON block whose id
   is that id followed by "-data". */
(function () {
  var uid = "__UID__";
  var root = document.getElementById(uid);
  var data = JSON.parse(document.getElementById(uid + "-data").textContent);
  window.CNNExplorer.mount(root, data);
})();
