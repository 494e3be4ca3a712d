-- A passing Discord problem (5xx, timeout, network) no longer fails an announcement after a few
-- tries a minute apart: it is tried again with exponential backoff for at least a day.
-- next_attempt_at: not before then (NULL: at the next cycle); retrying_since: when the current run
-- of passing failures began (NULL: none), so giving up is measured in time, not in attempts.
ALTER TABLE announcements ADD COLUMN next_attempt_at TEXT;
ALTER TABLE announcements ADD COLUMN retrying_since TEXT;
