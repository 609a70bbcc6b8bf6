-- Payments through Stripe: what sellers buy (a paid category's posting fee,
-- promotions), every purchase attempt, the Stripe events we received, the
-- refunds, disputes, and the ledger of every money movement with the daily
-- reconciliation against Stripe's balance transactions. Money is integer
-- cents. Financial rows outlive accounts: a deleted user's payments keep
-- their amounts and Stripe ids with `user_id` cleared.

-- Promotions and their prices; ops change them (admin API). A paid
-- category's posting fee stays on `marketplace_categories.fee_cents`.
CREATE TABLE payment_products (
    kind           text PRIMARY KEY CHECK (kind IN ('featured', 'bump', 'highlight')),
    name           text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    price_cents    integer NOT NULL CHECK (price_cents BETWEEN 50 AND 100000),
    -- How long it lasts; NULL for a bump (it happens once).
    duration_days  integer CHECK (duration_days BETWEEN 1 AND 365),
    active         boolean NOT NULL DEFAULT true,
    updated_at     timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    CHECK ((kind = 'bump') = (duration_days IS NULL))
);

INSERT INTO payment_products (kind, name, price_cents, duration_days) VALUES
    ('featured',  'Featured for 7 days (first in search and on the homepage)', 500, 7),
    ('bump',      'Bump to the top of the newest listings',                    200, NULL),
    ('highlight', 'Highlighted in results for 30 days',                        300, 30);

-- While a promotion lasts (read by search and the homepage widget).
ALTER TABLE marketplace_listings
    ADD COLUMN featured_until    timestamp,
    ADD COLUMN highlighted_until timestamp;
CREATE INDEX marketplace_listings_featured_idx
    ON marketplace_listings (featured_until) WHERE featured_until IS NOT NULL;

-- One purchase attempt: a Payment Intent created with `idempotency_key`.
-- States only move forward: created → failed ↔ (a retry on the same
-- intent) → succeeded → partially_refunded → refunded, or → disputed;
-- `canceled` is an open attempt replaced by a new one (the price or the
-- category changed, or Stripe canceled its intent).
CREATE TABLE payments (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                   uuid REFERENCES users (id) ON DELETE SET NULL,
    listing_id                bigint REFERENCES marketplace_listings (id) ON DELETE SET NULL,
    category_id               bigint NOT NULL REFERENCES marketplace_categories (id),
    purpose                   text NOT NULL CHECK (purpose IN ('posting', 'featured', 'bump', 'highlight')),
    amount_cents              integer NOT NULL CHECK (amount_cents > 0),
    currency                  text NOT NULL DEFAULT 'usd' CHECK (currency ~ '^[a-z]{3}$'),
    status                    text NOT NULL DEFAULT 'created' CHECK (status IN
                                  ('created', 'failed', 'canceled', 'succeeded', 'partially_refunded', 'refunded', 'disputed')),
    idempotency_key           text NOT NULL UNIQUE,
    stripe_payment_intent_id  text UNIQUE CHECK (char_length(stripe_payment_intent_id) <= 255),
    stripe_charge_id          text UNIQUE CHECK (char_length(stripe_charge_id) <= 255),
    failure_message           text CHECK (char_length(failure_message) <= 500),
    -- Stripe Radar opened a review (`review.opened`): ops look first.
    review_open               boolean NOT NULL DEFAULT false,
    created_at                timestamp NOT NULL,
    updated_at                timestamp NOT NULL,
    succeeded_at              timestamp,
    -- Set once, in the statement that publishes or promotes the listing.
    fulfilled_at              timestamp,
    fulfilment_note           text
);

-- One open attempt per listing and purpose: opening checkout again resumes it.
CREATE UNIQUE INDEX payments_one_open_idx ON payments (listing_id, purpose)
    WHERE status IN ('created', 'failed');
CREATE INDEX payments_listing_idx ON payments (listing_id);
CREATE INDEX payments_user_idx ON payments (user_id, created_at DESC);
CREATE INDEX payments_created_idx ON payments (created_at DESC);

-- Each promotion bought (history; the listing's `*_until` is the state).
CREATE TABLE listing_promotions (
    id          bigserial PRIMARY KEY,
    listing_id  bigint NOT NULL REFERENCES marketplace_listings (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('featured', 'bump', 'highlight')),
    payment_id  uuid NOT NULL UNIQUE REFERENCES payments (id),
    starts_at   timestamp NOT NULL,
    ends_at     timestamp NOT NULL
);
CREATE INDEX listing_promotions_listing_idx ON listing_promotions (listing_id);

-- Every verified webhook event, once (the id is Stripe's `evt_…`).
CREATE TABLE stripe_events (
    id            text PRIMARY KEY CHECK (char_length(id) <= 255),
    type          text NOT NULL CHECK (char_length(type) <= 100),
    created       timestamp NOT NULL,
    payload       jsonb NOT NULL,
    received_at   timestamp NOT NULL,
    processed_at  timestamp,
    -- Set when applying it failed for good (its job dead-lettered): the
    -- scheduler's sweep no longer queues it; ops see it in the admin API.
    failed_at     timestamp,
    outcome       text
);
CREATE INDEX stripe_events_received_idx ON stripe_events (received_at DESC);

-- Refunds: automatic ones (`approved` at once, issued by a job) and
-- requests for manual review (`requested` until staff approve or reject).
CREATE TABLE payment_refunds (
    id                bigserial PRIMARY KEY,
    payment_id        uuid NOT NULL REFERENCES payments (id),
    amount_cents      integer NOT NULL CHECK (amount_cents > 0),
    kind              text NOT NULL CHECK (kind IN ('automatic', 'manual')),
    status            text NOT NULL CHECK (status IN ('requested', 'approved', 'rejected', 'issued', 'failed')),
    reason            text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 500),
    requested_by      uuid REFERENCES users (id) ON DELETE SET NULL,
    requested_at      timestamp NOT NULL,
    decided_by        uuid REFERENCES users (id) ON DELETE SET NULL,
    decided_at        timestamp,
    decision_reason   text CHECK (char_length(decision_reason) <= 500),
    stripe_refund_id  text UNIQUE,
    issued_at         timestamp,
    failure           text,
    seller_notified_at timestamp
);
-- A payment is refunded automatically at most once.
CREATE UNIQUE INDEX payment_refunds_one_automatic_idx ON payment_refunds (payment_id)
    WHERE kind = 'automatic';
-- One request awaiting review per payment.
CREATE UNIQUE INDEX payment_refunds_one_request_idx ON payment_refunds (payment_id)
    WHERE status = 'requested';
CREATE INDEX payment_refunds_status_idx ON payment_refunds (status, requested_at);

-- Chargebacks, with the evidence package's blob key.
CREATE TABLE payment_disputes (
    id                 bigserial PRIMARY KEY,
    stripe_dispute_id  text NOT NULL UNIQUE,
    payment_id         uuid REFERENCES payments (id),
    stripe_charge_id   text,
    amount_cents       integer NOT NULL,
    currency           text NOT NULL,
    reason             text,
    status             text,
    evidence_due_by    timestamp,
    evidence_key       text,
    evidence_at        timestamp,
    ops_alerted_at     timestamp,
    created_at         timestamp NOT NULL
);

-- Every money movement, signed cents (money in is positive), once per
-- Stripe object: a charge (`ch_`), a refund (`re_`), a dispute (`dp_`), a
-- fee (the balance transaction `txn_` it was taken in).
CREATE TABLE payment_ledger (
    id                bigserial PRIMARY KEY,
    payment_id        uuid REFERENCES payments (id),
    kind              text NOT NULL CHECK (kind IN ('charge', 'refund', 'dispute', 'fee')),
    amount_cents      bigint NOT NULL,
    currency          text NOT NULL,
    stripe_object_id  text NOT NULL,
    occurred_at       timestamp NOT NULL,
    recorded_at       timestamp NOT NULL,
    UNIQUE (kind, stripe_object_id)
);
CREATE INDEX payment_ledger_occurred_idx ON payment_ledger (occurred_at);
CREATE INDEX payment_ledger_payment_idx ON payment_ledger (payment_id);

-- The daily check of the ledger against Stripe's balance transactions.
CREATE TABLE payment_reconciliations (
    day            date PRIMARY KEY,
    transactions   integer NOT NULL,
    discrepancies  integer NOT NULL,
    finished_at    timestamp NOT NULL
);

CREATE TABLE payment_discrepancies (
    id                bigserial PRIMARY KEY,
    day               date NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('missing_in_ledger', 'missing_in_stripe', 'amount_mismatch')),
    stripe_object_id  text NOT NULL,
    ledger_cents      bigint,
    stripe_cents      bigint,
    detail            text NOT NULL,
    found_at          timestamp NOT NULL,
    resolved_at       timestamp,
    UNIQUE (day, kind, stripe_object_id)
);

-- The refunds owed when staff remove listing `p_listing` at `p_at`: for every
-- payment for it with money left and no refund open, an automatic refund
-- (`approved`) when paid within `p_window_hours`, else a request for manual
-- review. Called by the marketplace in the statement that removes the
-- listing, so a removal never loses its refunds; `payments-scheduler` queues
-- the approved ones.
CREATE FUNCTION payment_refunds_on_removal(p_listing bigint, p_why text, p_at timestamp, p_window_hours integer)
RETURNS TABLE (refund_id bigint, refund_status text)
LANGUAGE sql VOLATILE AS $$
    WITH owed AS (
        SELECT p.id,
               p.amount_cents - coalesce((SELECT -sum(l.amount_cents) FROM payment_ledger l
                                          WHERE l.payment_id = p.id AND l.kind = 'refund'), 0) AS left_cents,
               -- A payment is refunded automatically once at most (the
               -- index below); a second owed refund goes to review.
               p.succeeded_at >= p_at - make_interval(hours => p_window_hours)
                   AND NOT EXISTS (SELECT 1 FROM payment_refunds a WHERE a.payment_id = p.id
                                   AND a.kind = 'automatic') AS in_window
        FROM payments p
        WHERE p.listing_id = p_listing AND p.status IN ('succeeded', 'partially_refunded')
          AND NOT EXISTS (SELECT 1 FROM payment_refunds x WHERE x.payment_id = p.id
                          AND x.status IN ('requested', 'approved')))
    INSERT INTO payment_refunds (payment_id, amount_cents, kind, status, reason, requested_at)
    SELECT id, left_cents,
           CASE WHEN in_window THEN 'automatic' ELSE 'manual' END,
           CASE WHEN in_window THEN 'approved' ELSE 'requested' END,
           left('listing removed by staff: ' || p_why, 500), p_at
    FROM owed WHERE left_cents > 0
    ON CONFLICT DO NOTHING
    RETURNING id, status
$$;
