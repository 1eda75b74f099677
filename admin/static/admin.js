/* branchbot admin web: small progressive enhancements; every page works without this file. */
(function () {
  "use strict";

  // A picker form (organization, filters) submits as soon as its select changes.
  document.querySelectorAll("form[data-autosubmit] select").forEach(function (sel) {
    sel.addEventListener("change", function () { sel.form.submit(); });
  });

  // "Select all" checkboxes, and a live count of the selection on the bulk bar.
  document.querySelectorAll("input[data-select-all]").forEach(function (all) {
    var name = all.getAttribute("data-select-all");
    var form = all.form;
    var boxes = function () { return form.querySelectorAll('input[type=checkbox][name="' + name + '"]'); };
    var counter = form.querySelector("[data-selected-count]");
    var update = function () {
      var n = 0;
      boxes().forEach(function (b) { if (b.checked) { n += 1; } });
      if (counter) { counter.textContent = String(n); }
      all.checked = n > 0 && n === boxes().length;
    };
    all.addEventListener("change", function () {
      boxes().forEach(function (b) { b.checked = all.checked; });
      update();
    });
    boxes().forEach(function (b) { b.addEventListener("change", update); });
    update();
  });

  // Buttons that change many things ask first.
  document.querySelectorAll("[data-confirm]").forEach(function (el) {
    el.addEventListener("click", function (ev) {
      if (!window.confirm(el.getAttribute("data-confirm"))) { ev.preventDefault(); }
    });
  });
})();
