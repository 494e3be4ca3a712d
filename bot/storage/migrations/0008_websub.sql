-- WebSub (PubSubHubbub 0.4) subscriptions: one per feed that advertises a hub. The callback is
-- PUBLIC_URL/websub/<token>. A removed feed's subscription stays (feed_id NULL, state
-- 'unsubscribing') until the hub confirms the unsubscription or the bot gives up asking.
CREATE TABLE websub_subscriptions (
    id             INTEGER PRIMARY KEY,
    feed_id        INTEGER UNIQUE REFERENCES feeds (id) ON DELETE SET NULL,
    token          TEXT NOT NULL UNIQUE,           -- the callback's unguessable path segment
    hub_url        TEXT NOT NULL,
    topic_url      TEXT NOT NULL,
    secret         TEXT NOT NULL,                  -- hub.secret: HMAC key of the content notifications
    state          TEXT NOT NULL CHECK (state IN ('wanted', 'pending', 'live', 'failed', 'unsubscribing')),
    requested_mode TEXT CHECK (requested_mode IN ('subscribe', 'unsubscribe')), -- awaiting the hub's check
    requested_at   TEXT,
    lease_seconds  INTEGER,
    expires_at     TEXT,                           -- end of the verified lease
    next_action_at TEXT,                           -- when the bot next asks (subscribe, renew, retry, give up)
    attempts       INTEGER NOT NULL DEFAULT 0,     -- failed requests in a row
    last_error     TEXT,
    last_push_at   TEXT,
    created_at     TEXT NOT NULL
);

CREATE INDEX websub_next_action ON websub_subscriptions (next_action_at);
