-- 001_initial: the managed configuration of portico (see src/store/README.md).
--
-- Each managed object is one row. `spec` holds the packed protobuf message
-- (portico.config.v1.Service / Route / RateLimitRule / ApiKey / Plugin) and is
-- the source of truth: the gateway loads objects from spec only. The other
-- columns are a queryable projection that the store rewrites from spec on
-- every write; editing them by hand changes nothing the gateway sees. Write
-- through the admin API (or portico itself), never with UPDATE.
--
-- config_state holds the version of the whole document; every accepted change
-- increases it by one, and the writer sends NOTIFY portico_config '<version>'.
-- Applied by `portico --migrate` in one transaction, recorded in
-- schema_migrations.

CREATE TABLE services (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name            VARCHAR(100) UNIQUE NOT NULL,
    protocol        VARCHAR(20),
    load_balancer   VARCHAR(50),
    instances       JSONB,
    health_check    JSONB,
    circuit_breaker JSONB,
    version         BIGINT NOT NULL CHECK (version >= 0),
    spec            BYTEA NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE routes (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name         TEXT UNIQUE NOT NULL,
    path         VARCHAR(255) NOT NULL,
    methods      TEXT[],
    host         TEXT,
    -- NULL when the named service does not exist (yet); spec keeps the name.
    service_id   UUID REFERENCES services(id) ON DELETE SET NULL
                      DEFERRABLE INITIALLY DEFERRED,
    strip_prefix BOOLEAN,
    timeout_ms   INTEGER CHECK (timeout_ms >= 0),
    retry_count  INTEGER CHECK (retry_count >= 0),
    priority     INTEGER,
    enabled      BOOLEAN,
    version      BIGINT NOT NULL CHECK (version >= 0),
    spec         BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX routes_service_id ON routes (service_id);

CREATE TABLE rate_limit_rules (
    id             UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name           VARCHAR(100) UNIQUE NOT NULL,
    -- NULL = global (every route), or the named route is missing.
    route_id       UUID REFERENCES routes(id) ON DELETE SET NULL
                        DEFERRABLE INITIALLY DEFERRED,
    key_type       VARCHAR(50) NOT NULL,
    limit_value    BIGINT NOT NULL CHECK (limit_value >= 0),
    window_seconds INTEGER NOT NULL CHECK (window_seconds > 0),
    burst_size     BIGINT CHECK (burst_size >= 0),
    action         VARCHAR(20),
    algorithm      VARCHAR(20),
    enabled        BOOLEAN,
    version        BIGINT NOT NULL CHECK (version >= 0),
    spec           BYTEA NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX rate_limit_rules_route_id ON rate_limit_rules (route_id);

CREATE TABLE api_keys (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name            TEXT UNIQUE NOT NULL,
    key_hash        VARCHAR(64) UNIQUE NOT NULL,
    key_prefix      VARCHAR(8) NOT NULL,
    client_id       VARCHAR(100) NOT NULL,
    client_name     VARCHAR(255),
    scopes          TEXT[],
    rate_limit_tier VARCHAR(50),
    expires_at      TIMESTAMPTZ,
    enabled         BOOLEAN,
    version         BIGINT NOT NULL CHECK (version >= 0),
    spec            BYTEA NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at    TIMESTAMPTZ
);
CREATE INDEX api_keys_client_id ON api_keys (client_id);

CREATE TABLE plugins (
    id         UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name       TEXT UNIQUE NOT NULL,
    type       TEXT NOT NULL,
    config     JSONB,
    routes     TEXT[],
    global     BOOLEAN,
    enabled    BOOLEAN,
    ord        INTEGER,
    version    BIGINT NOT NULL CHECK (version >= 0),
    spec       BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE config_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    version    BIGINT NOT NULL CHECK (version >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO config_state (id, version) VALUES (1, 0);
