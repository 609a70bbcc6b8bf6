// Village Homepage's only script. Pages allow no inline script
// (Content-Security-Policy `script-src 'self'`), so behaviour is attached here.
// Everything but the marketplace's picture upload works without it.
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("[data-stop-impersonating]")) {
    button.addEventListener("click", async () => {
      await fetch("/admin/api/impersonation", { method: "DELETE" });
      location.reload();
    });
  }

  // Place fields suggest towns as you type (GET /api/places?q=).
  for (const input of document.querySelectorAll("input[data-places]")) {
    const list = document.getElementById(input.getAttribute("list"));
    if (!list) continue;
    let timer;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      const q = input.value.trim();
      if (q.length < 2) return;
      timer = setTimeout(async () => {
        const r = await fetch("/api/places?q=" + encodeURIComponent(q));
        if (!r.ok) return;
        const { places } = await r.json();
        list.replaceChildren(...places.map((p) => {
          const o = document.createElement("option");
          o.value = p.label;
          return o;
        }));
      }, 200);
    });
  }

  // Listing pictures go straight to object storage: ask for an upload URL,
  // PUT the file with exactly the signed headers, then confirm.
  for (const input of document.querySelectorAll("input[data-upload-listing]")) {
    const listing = input.dataset.uploadListing;
    const status = input.closest("section").querySelector(".upload-status");
    const say = (text) => { if (status) status.textContent = text; };
    const json = { "content-type": "application/json" };
    input.addEventListener("change", async () => {
      for (const file of input.files) {
        say("Uploading " + file.name + "…");
        const start = await fetch(`/api/marketplace/listings/${listing}/images`, {
          method: "POST",
          headers: json,
          body: JSON.stringify({ content_type: file.type, byte_size: file.size }),
        });
        if (!start.ok) {
          const problem = await start.json().catch(() => ({}));
          const errors = (problem.errors || []).map((e) => e.message).join("; ");
          say(file.name + ": " + (errors || problem.detail || problem.title || "refused"));
          return;
        }
        const upload = await start.json();
        const put = await fetch(upload.upload_url, {
          method: "PUT",
          headers: { "content-type": upload.headers["content-type"] },
          body: file,
        }).catch(() => null);
        if (!put || !put.ok) {
          say(file.name + ": storage refused the upload; try again");
          return;
        }
        const done = await fetch(
          `/api/marketplace/listings/${listing}/images/${upload.image_id}/confirm`,
          { method: "POST", headers: json, body: "{}" },
        );
        if (!done.ok) {
          say(file.name + ": the upload could not be confirmed; try again");
          return;
        }
      }
      location.reload();
    });
  }
});
