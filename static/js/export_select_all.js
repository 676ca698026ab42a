// The "Select all" box of django-import-export's export page
// (templates/admin/import_export/export.html), bound here instead of an inline onchange
// attribute, which the Content-Security-Policy refuses.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("input.select-toggle").forEach((toggle) => {
    toggle.addEventListener("change", (event) => {
      document.querySelectorAll('.selectable-field-export-row input[type="checkbox"]').forEach((checkbox) => {
        checkbox.checked = event.target.checked;
      });
    });
  });
});
