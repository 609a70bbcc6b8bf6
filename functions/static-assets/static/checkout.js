// The checkout page (/payments/checkout): asks our API for the purchase's
// Payment Intent, confirms it with Stripe.js (the card never touches our
// servers), then waits until our webhook handler has applied the payment.
(function () {
  "use strict";
  var root = document.getElementById("checkout");
  if (!root || typeof Stripe !== "function") { return; }
  var status = document.getElementById("checkout-status");
  var button = document.getElementById("pay");
  var say = function (text) { status.textContent = text; };
  var checkout = null;
  var card = null;

  function api(method, path, body) {
    return fetch(path, {
      method: method,
      credentials: "same-origin",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) { throw new Error(j.detail || j.title || ("HTTP " + r.status)); }
        return j;
      });
    });
  }

  function start() {
    return api("POST", "/api/payments/checkout", {
      listing_id: Number(root.dataset.listing),
      purpose: root.dataset.purpose
    }).then(function (c) {
      checkout = c;
      var stripe = Stripe(c.publishable_key);
      var elements = stripe.elements();
      card = elements.create("card");
      card.mount("#card");
      button.disabled = false;
      button.addEventListener("click", function () { pay(stripe); });
    });
  }

  function pay(stripe) {
    button.disabled = true;
    say("Confirming with Stripe…");
    stripe.confirmCardPayment(checkout.client_secret, { payment_method: { card: card } })
      .then(function (result) {
        if (result.error) {
          say(result.error.message || "The payment did not go through.");
          button.disabled = false;
          return;
        }
        say("Paid. Waiting for confirmation…");
        // Stripe said it succeeded: wait for our side to apply it (an
        // earlier decline may still show as `failed` for a moment).
        poll(0);
      });
  }

  function poll(n) {
    api("GET", "/api/payments/" + checkout.payment_id).then(function (p) {
      if (p.fulfilled) { window.location.assign(root.dataset.done); return; }
      if (p.status === "refunded") { say("The listing could not take this purchase; it was refunded."); return; }
      if (n > 60) { say("Stripe has not confirmed yet; your listing will update when it does."); return; }
      setTimeout(function () { poll(n + 1); }, 1000);
    }).catch(function (e) { say(e.message); });
  }

  button.disabled = true;
  start().catch(function (e) { say(e.message); });
})();
