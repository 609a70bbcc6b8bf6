-- The stocks widget: watchlists, the symbols they may name, and the quote
-- cache refreshed centrally (each symbol once, whatever its watchers).

-- Symbols Alpha Vantage's SYMBOL_SEARCH confirmed: a watchlist names only
-- these, and a symbol confirmed once is never searched for again.
CREATE TABLE stock_symbols (
    symbol        text PRIMARY KEY CHECK (symbol ~ '^[A-Z0-9][A-Z0-9.\-]{0,14}$'),
    name          text NOT NULL CHECK (char_length(name) <= 200),
    region        text NOT NULL DEFAULT '' CHECK (char_length(region) <= 100),
    currency      text NOT NULL DEFAULT '' CHECK (char_length(currency) <= 10),
    confirmed_at  timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    -- Set when GLOBAL_QUOTE has nothing for it (a fund, a delisted or
    -- foreign listing): the scheduler then asks once a day, not every
    -- cycle, and the widget says no quote is available.
    no_quote_since timestamp
);

-- A visitor's watchlist, in their order. Owned by a `users` row (an
-- anonymous visitor's too, created on their first save, as preferences are).
CREATE TABLE stock_watchlists (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    symbol      text NOT NULL REFERENCES stock_symbols (symbol),
    position    integer NOT NULL CHECK (position >= 0),
    added_at    timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    PRIMARY KEY (user_id, symbol)
);

CREATE INDEX stock_watchlists_symbol_idx ON stock_watchlists (symbol);

-- The latest quote per symbol (GLOBAL_QUOTE), prices as exact decimals.
CREATE TABLE stock_quotes (
    symbol          text PRIMARY KEY REFERENCES stock_symbols (symbol) ON DELETE CASCADE,
    price           numeric(18, 6) NOT NULL,
    change          numeric(18, 6) NOT NULL,
    change_percent  numeric(18, 6) NOT NULL,
    previous_close  numeric(18, 6) NOT NULL,
    trading_day     date NOT NULL,
    -- Set when fetched after the bell on `trading_day`: the closing price.
    is_close        boolean NOT NULL DEFAULT false,
    fetched_at      timestamp NOT NULL
);

-- When the provider's quota stopped refreshes: one row per pause (window
-- and when it lifts), not per deferred job; the deferrals themselves are
-- counted on `/q/metrics`. Shown in the ops queue view
-- (`/admin/api/queues/throttles`); kept 30 days by the scheduler.
CREATE TABLE stock_throttle_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    -- `minute` or `day`: which quota was spent.
    window_kind text NOT NULL CHECK (window_kind IN ('minute', 'day')),
    symbol      text,
    resume_at   timestamp NOT NULL
);

CREATE INDEX stock_throttle_events_at_idx ON stock_throttle_events (at);
-- The homepage asks whether a pause is on (`resume_at` in the future).
CREATE INDEX stock_throttle_events_resume_idx ON stock_throttle_events (resume_at);
