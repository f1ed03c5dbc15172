-- Client policy: replicas heartbeat here, so each knows how many share the deployment-wide
-- rate limits and lockout thresholds. Lockouts themselves travel through the change log.
CREATE TABLE replicas (
    replica_id        TEXT PRIMARY KEY,
    heartbeat_time_us BIGINT NOT NULL
);
