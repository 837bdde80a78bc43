-- Console sign-ins (`/console`): an API key exchanged for a session cookie.
-- Only the SHA-256 of the cookie's token is kept, and the hash of the key
-- that signed in (never the key), so that each request finds the key's
-- owner as the API does: a revoked or expired key ends its sessions at once.
CREATE TABLE console_sessions (
    token_hash bytea PRIMARY KEY,
    key_hash bytea NOT NULL,
    -- Every form and action of the session carries it (CSRF).
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_at ON console_sessions (expires_at);
