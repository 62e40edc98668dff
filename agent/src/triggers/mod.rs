//! What starts runs: cron schedules, the Alertmanager webhook and manual requests (CLI and HTTP API).
