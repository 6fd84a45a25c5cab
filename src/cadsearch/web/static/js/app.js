// cadsearch pages: progressive enhancement only. Every page works without this script (plain forms and links).
(() => {
  "use strict";

  // --- home: drag and drop, paste, preview, client-side size check, busy state -------------------------------
  const form = document.getElementById("search-form");
  if (form) {
    const input = document.getElementById("image-input");
    const zone = document.getElementById("dropzone");
    const preview = document.getElementById("preview");
    const error = document.getElementById("client-error");
    const maxBytes = Number(form.dataset.maxBytes || 0);

    const accept = (files) => {
      error.textContent = "";
      const file = files && files[0];
      if (!file) return false;
      if (maxBytes && file.size > maxBytes) {
        error.textContent = `This file is ${(file.size / 1048576).toFixed(1)} MB; the limit is ${(maxBytes / 1048576).toFixed(0)} MB.`;
        return false;
      }
      if (file.type && !file.type.startsWith("image/")) {
        error.textContent = "This does not look like an image; choose a photo (JPEG, PNG, WebP, …).";
        return false;
      }
      if (preview && file.type.startsWith("image/")) {
        preview.src = URL.createObjectURL(file);
        preview.hidden = false;
      }
      return true;
    };
    const submit = () => { document.body.classList.add("searching"); form.submit(); };

    input.addEventListener("change", () => { if (accept(input.files)) submit(); });
    ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (e) => {
      e.preventDefault(); zone.classList.add("dragover");
    }));
    ["dragleave", "dragend", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("dragover")));
    zone.addEventListener("drop", (e) => {
      e.preventDefault();
      const files = e.dataTransfer && e.dataTransfer.files;
      if (!files || !files.length) return;
      input.files = files;  // the form then uploads the dropped file like a picked one
      if (accept(files)) submit();
    });
    document.addEventListener("paste", (e) => {
      const items = e.clipboardData ? Array.from(e.clipboardData.files) : [];
      if (!items.length) return;
      const dt = new DataTransfer();
      dt.items.add(items[0]);
      input.files = dt.files;
      if (accept(dt.files)) submit();
    });
    form.addEventListener("submit", (e) => {
      if (!input.files.length) { e.preventDefault(); error.textContent = "Choose a photo first, or drop one on the box."; return; }
      document.body.classList.add("searching");
    });
    document.querySelectorAll(".example-grid").forEach((f) => f.addEventListener("submit", () => document.body.classList.add("searching")));
    // Coming back with the browser's back button must not show a stale spinner.
    window.addEventListener("pageshow", () => document.body.classList.remove("searching"));
  }

  // --- results: show the overlay of any match ---------------------------------------------------------------
  const overlay = document.getElementById("overlay-img");
  document.querySelectorAll(".overlay-btn").forEach((btn) => btn.addEventListener("click", () => {
    if (!overlay) return;
    overlay.src = btn.dataset.src;
    const caption = overlay.closest("figure").querySelector("figcaption .muted");
    if (caption) caption.textContent = "· " + btn.dataset.name;
    overlay.scrollIntoView({ behavior: "smooth", block: "nearest" });
  }));

  // --- library: filter cards by text ------------------------------------------------------------------------
  const filter = document.getElementById("library-filter");
  if (filter) {
    const cards = Array.from(document.querySelectorAll("#model-grid .model-card"));
    const none = document.getElementById("filter-empty");
    filter.addEventListener("input", () => {
      const q = filter.value.trim().toLowerCase();
      let shown = 0;
      cards.forEach((c) => { const hit = !q || c.dataset.text.includes(q); c.hidden = !hit; shown += hit; });
      none.hidden = shown > 0;
    });
  }

  // --- model page: live camera readout and reset ---------------------------------------------------------------
  // model-viewer's camera-orbit is "theta phi radius": theta turns about +Y starting at +Z (our azimuth φ) and
  // phi is measured from +Y (our polar θ), so DESIGN.md's camera r·(sinθ sinφ, cosθ, sinθ cosφ) maps 1:1.
  // Its camera has no roll: the page turns the whole viewer by the roll (CSS rotate, clockwise for a positive
  // angle, so minus our counter-clockwise roll); orbiting keeps that turn, as a tilted camera would.
  const viewer = document.getElementById("viewer");
  if (viewer) {
    const polarEl = document.getElementById("live-polar");
    const azEl = document.getElementById("live-azimuth");
    const rollEl = document.getElementById("live-roll");
    const deg = (rad) => rad * 180 / Math.PI;
    const roll = Number(viewer.dataset.roll || 0);
    viewer.addEventListener("camera-change", () => {
      const orbit = viewer.getCameraOrbit();
      polarEl.textContent = `${Math.round(deg(orbit.phi))}°`;
      azEl.textContent = `${Math.round(((deg(orbit.theta) % 360) + 360) % 360)}°`;
      if (rollEl) rollEl.textContent = `${Math.round(roll) + 0}°`;
    });
    document.getElementById("reset-view").addEventListener("click", () => {
      viewer.cameraOrbit = `${viewer.dataset.azimuth}deg ${viewer.dataset.polar}deg auto`;
      viewer.fieldOfView = "auto";
      viewer.style.transform = `rotate(${-roll}deg)`;
    });
  }
})();
