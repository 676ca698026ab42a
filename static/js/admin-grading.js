// The grading form (templates/admin/scoring/submission/change_form.html): the points the
// chosen decision and score give, kept up to date in #points-preview as the grader types.
// The page works without it: the score's help text gives the same rule and examples, and
// the server writes the preview for the values the page opened with.
// Points are scoring.services.points_for's: round(points × score / 100), halves up.
// No inline script: the site's Content-Security-Policy refuses it.
(() => {
  "use strict";

  const APPROVED = "APPROVED";
  const REJECTED = "REJECTED";

  function pointsFor(points, score) {
    return Math.floor((points * score + 50) / 100);
  }

  function pointsText(points) {
    return `${points} point${points === 1 ? "" : "s"}`;
  }

  function previewText(points, dynamic, decision, raw) {
    if (decision === REJECTED) {
      return "Rejecting gives no points.";
    }
    const typed = raw.trim();
    if (typed === "") {
      return "Type a score from 0 to 100 to see the points it gives.";
    }
    const score = Number(typed);
    if (!/^\d+$/.test(typed) || score > 100) {
      return "A score is a whole number from 0 to 100.";
    }
    const now = dynamic ? " at the challenge's value now" : "";
    const verb = decision === APPROVED ? "Approving with" : "If approved,";
    return `${verb} ${score}/100 gives ${pointsText(pointsFor(points, score))}${now}.`;
  }

  function start() {
    const output = document.getElementById("points-preview");
    if (!output) {
      return;
    }
    const score = document.getElementById(output.dataset.score);
    const form = output.closest("form");
    const points = Number.parseInt(output.dataset.points, 10);
    if (!score || !form || Number.isNaN(points)) {
      return;
    }
    const dynamic = output.dataset.dynamic === "true";
    const decisions = form.querySelectorAll(`input[type="radio"][name="${output.dataset.decision}"]`);

    function update() {
      const chosen = Array.from(decisions).find((radio) => radio.checked);
      output.textContent = previewText(points, dynamic, chosen ? chosen.value : "", score.value);
    }

    score.addEventListener("input", update);
    decisions.forEach((radio) => radio.addEventListener("change", update));
    update();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
