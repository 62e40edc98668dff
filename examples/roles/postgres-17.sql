-- Least-privilege roles for Warden's shipped plugins on PostgreSQL 17 and
-- later: as postgres-15.sql, but `maintenance` needs no ownership
-- (pg_maintain) and dumps need no ownership (pg_read_all_data). Only
-- index-advisor's `ddl` (CREATE INDEX) still needs the tables' owner.
-- Run it as a superuser in the database `app`: psql -d app -f postgres-17.sql

CREATE ROLE warden_read LOGIN PASSWORD 'change-me-read';
GRANT CONNECT ON DATABASE app TO warden_read;
GRANT USAGE ON SCHEMA public TO warden_read;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO warden_read;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA public GRANT SELECT ON TABLES TO warden_read;
GRANT pg_monitor TO warden_read;

CREATE ROLE warden_maint LOGIN PASSWORD 'change-me-maint';
GRANT CONNECT ON DATABASE app TO warden_maint;
-- vacuum, runbook: VACUUM, ANALYZE, REINDEX, CLUSTER, REFRESH MATERIALIZED VIEW on every table.
GRANT pg_maintain TO warden_maint;
-- backup: pg_dump reads every table and sequence.
GRANT pg_read_all_data TO warden_maint;
-- runbook: cancel and terminate other roles' sessions.
GRANT pg_signal_backend TO warden_maint;
-- index-advisor with `ddl` only: CREATE INDEX needs the table's owner.
-- GRANT app_owner TO warden_maint;

CREATE ROLE warden_restore LOGIN PASSWORD 'change-me-restore';
CREATE DATABASE app_scratch OWNER warden_restore;
