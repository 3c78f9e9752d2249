-- Several nodes on one database (issue 20): who is working on what, until when.
-- A lease that is not renewed by its `until` may be taken by any node.

-- A queued run a node is completing. A run without a row here is free once it is older
-- than the lease (its accepting node renews a lease for every run it holds long before).
CREATE TABLE run_leases (
    run_id TEXT COLLATE "C" PRIMARY KEY,
    owner  TEXT COLLATE "C" NOT NULL,
    until  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX run_leases_owner ON run_leases(owner);

-- Cluster-wide duties one node does at a time ('scheduler': due timers, batch closes,
-- schedules, expiries and wakes, the counter fold, retention).
CREATE TABLE leases (
    name  TEXT COLLATE "C" PRIMARY KEY,
    owner TEXT COLLATE "C" NOT NULL,
    until TEXT COLLATE "C" NOT NULL
);
