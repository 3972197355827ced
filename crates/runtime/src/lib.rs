//! The supervisor: runs biomes as processes, health checks, restarts, logs, reconciliation, daemon protocol.
