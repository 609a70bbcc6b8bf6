// Village Homepage's only script. Pages allow no inline script
// (Content-Security-Policy `script-src 'self'`), so behaviour is attached here.
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("[data-stop-impersonating]")) {
    button.addEventListener("click", async () => {
      await fetch("/admin/api/impersonation", { method: "DELETE" });
      location.reload();
    });
  }
});
