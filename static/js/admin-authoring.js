// The challenge's admin page (templates/admin/challenges/project/change_form.html).
// Everything here improves a page that works without it:
// - "Test a flag" answers on the page (JSON from ProjectAdmin.test_flag_view): unsaved edits stay;
// - a "Show" button unmasks the two flag boxes, to read what was typed;
// - the category select reveals the "new category" box only for "Add a new category…";
// - a "Preview" button renders the description as students see it (ProjectAdmin.preview_view).
// No inline script or style: the site's Content-Security-Policy refuses them.
(() => {
  "use strict";

  const NEW_CATEGORY = "__new__";

  function csrfToken(form) {
    const input = form && form.querySelector('input[name="csrfmiddlewaretoken"]');
    return input ? input.value : "";
  }

  async function postForJson(url, body, token) {
    const response = await fetch(url, {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": token },
    });
    let data = {};
    try {
      data = await response.json();
    } catch (error) {
      data = {};
    }
    return { ok: response.ok, status: response.status, data };
  }

  function failure(status) {
    if (status === 403) return "You are not allowed to do this here, or your session has expired: reload the page.";
    if (status === 404) return "This challenge no longer exists.";
    return "Something went wrong: try again, or save the challenge and reload the page.";
  }

  function flagTest() {
    const form = document.getElementById("flag-test-form");
    const input = document.getElementById("id_flag_test");
    const result = document.getElementById("flag-test-result");
    if (!form || !input || !result) return;
    const button = document.getElementById("flag-test-button");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      result.className = "flag-test-result";
      if (!input.value.trim()) {
        result.textContent = "Type a flag to test.";
        result.classList.add("flag-test-result--error");
        input.focus();
        return;
      }
      result.textContent = "Testing…";
      if (button) button.disabled = true;
      try {
        const { status, data } = await postForJson(form.action, new FormData(form), csrfToken(form));
        result.textContent = data.message || failure(status);
        if (data.matches === true) result.classList.add("flag-test-result--match");
        else if (data.matches === false) result.classList.add("flag-test-result--mismatch");
        else result.classList.add("flag-test-result--error");
      } catch (error) {
        result.textContent = "The server could not be reached: try again.";
        result.classList.add("flag-test-result--error");
      } finally {
        if (button) button.disabled = false;
      }
    });
    // a new candidate: the last answer no longer applies
    input.addEventListener("input", () => {
      result.textContent = "";
      result.className = "flag-test-result";
    });
  }

  function showFlag() {
    const boxes = ["id_new_flag", "id_new_flag_again"].map((id) => document.getElementById(id)).filter(Boolean);
    if (!boxes.length) return;
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "button authoring-show-flag";
    toggle.id = "show-flag";
    toggle.textContent = "Show";
    toggle.setAttribute("aria-pressed", "false");
    toggle.setAttribute("aria-controls", boxes.map((box) => box.id).join(" "));
    toggle.setAttribute("aria-label", "Show the flag as typed");
    boxes[0].insertAdjacentElement("afterend", toggle);
    toggle.addEventListener("click", () => {
      const shown = toggle.getAttribute("aria-pressed") !== "true";
      boxes.forEach((box) => {
        box.type = shown ? "text" : "password";
      });
      toggle.setAttribute("aria-pressed", String(shown));
      toggle.textContent = shown ? "Hide" : "Show";
    });
  }

  function category() {
    const select = document.getElementById("id_category");
    const box = document.getElementById("id_new_category");
    const row = box && box.closest(".form-row");
    if (!select || !box || !row) return;
    const label = row.querySelector("label");
    if (label) label.textContent = "New category:";
    const sync = () => {
      const wanted = select.value === NEW_CATEGORY;
      row.hidden = !wanted;
      box.disabled = !wanted; // a hidden box sends nothing: the choice above counts
    };
    // a new category typed before (a form error, the Back button): keep showing it
    if (box.value.trim() && select.value !== NEW_CATEGORY) select.value = NEW_CATEGORY;
    sync();
    select.addEventListener("change", () => {
      sync();
      if (select.value === NEW_CATEGORY) box.focus();
    });
  }

  function preview() {
    const script = document.getElementById("admin-authoring-script");
    const textarea = document.getElementById("id_description");
    const mainForm = textarea && textarea.form;
    if (!script || !textarea || !mainForm || !script.dataset.previewUrl) return;
    const bar = document.createElement("div");
    bar.className = "authoring-preview-bar authoring-below-field";
    const button = document.createElement("button");
    button.type = "button";
    button.className = "button";
    button.id = "preview-button";
    button.textContent = "Preview";
    button.setAttribute("aria-controls", "description-preview");
    const note = document.createElement("span");
    note.className = "authoring-preview-note";
    note.textContent = "as students will see it (not saved)";
    bar.append(button, " ", note);
    const panel = document.createElement("section");
    panel.id = "description-preview";
    panel.className = "authoring-preview authoring-below-field";
    panel.hidden = true;
    panel.setAttribute("aria-label", "Preview of the description");
    panel.setAttribute("aria-live", "polite");
    panel.tabIndex = -1;
    // below the box and its label, above the help text
    const field = textarea.closest(".flex-container") || textarea;
    field.insertAdjacentElement("afterend", bar);
    bar.insertAdjacentElement("afterend", panel);

    button.addEventListener("click", async () => {
      const body = new FormData();
      body.append("description", textarea.value);
      button.disabled = true;
      panel.hidden = false;
      panel.className = "authoring-preview authoring-below-field";
      panel.textContent = "Rendering…";
      try {
        const { ok, status, data } = await postForJson(script.dataset.previewUrl, body, csrfToken(mainForm));
        if (ok && typeof data.html === "string") {
          // sanitised by the server (challenges.markdown.render_markdown), as on the student's page
          panel.innerHTML = data.html.trim() || "<p><em>The description is empty.</em></p>";
        } else {
          panel.classList.add("authoring-preview--error");
          panel.textContent = data.error || failure(status);
        }
      } catch (error) {
        panel.classList.add("authoring-preview--error");
        panel.textContent = "The server could not be reached: try again.";
      } finally {
        button.disabled = false;
      }
    });
  }

  function start() {
    flagTest();
    showFlag();
    category();
    preview();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
