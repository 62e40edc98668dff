-- Least-privilege roles for Warden's shipped plugins on PostgreSQL 15 and 16
-- (for 17+, see postgres-17.sql). `warden check --connect` passes clean with
-- them: tests/it/credentials.rs runs this file as it is.
--
-- Assumed: the application database `app`, its tables owned by `app_owner`
-- in schema `public`, and a scratch database `app_scratch` for the backup
-- plugin's verification restores. Change the names and passwords to yours,
-- and run it as a superuser IN THE DATABASE `app` (the grants on schemas and
-- tables belong to one database): psql -d app -f postgres-15.sql

-- Every `read` call (read_url_env / read_url_file): SELECT and statistics.
-- vacuum reads pg_stat_user_tables; index-advisor reads pg_stat_statements,
-- pg_qualstats and EXPLAINs the workload's queries (needs SELECT); runbook
-- diagnoses with queries; backup lists its artifacts.
CREATE ROLE warden_read LOGIN PASSWORD 'change-me-read';
GRANT CONNECT ON DATABASE app TO warden_read;
GRANT USAGE ON SCHEMA public TO warden_read;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO warden_read;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA public GRANT SELECT ON TABLES TO warden_read;
-- Other roles' statements in pg_stat_statements (pg_monitor includes pg_read_all_stats).
GRANT pg_monitor TO warden_read;

-- Every other call (the main URL: url_env / url_file).
CREATE ROLE warden_maint LOGIN PASSWORD 'change-me-maint';
GRANT CONNECT ON DATABASE app TO warden_maint;
-- vacuum and runbook (`maintenance`: VACUUM, ANALYZE), index-advisor
-- (`ddl`: CREATE INDEX CONCURRENTLY) and backup (`artifacts`: pg_dump reads
-- every table and sequence): before PostgreSQL 17 only a table's owner (or
-- the database owner) may VACUUM it, and only the owner may index it, so the
-- role gets the owner's rights.
GRANT app_owner TO warden_maint;
-- runbook (`session-control`: cancel and terminate other roles' sessions).
GRANT pg_signal_backend TO warden_maint;

-- backup without owning the tables (a separate target URL for dumps only):
-- CREATE ROLE warden_dump LOGIN PASSWORD 'change-me-dump';
-- GRANT CONNECT ON DATABASE app TO warden_dump;
-- GRANT pg_read_all_data TO warden_dump;   -- SELECT on every table and sequence, USAGE on every schema

-- backup's verification restore (`restore_to`): the scratch database's
-- owner (CREATE on it and on its `public` schema). The source's extensions
-- must be trusted (pg_available_extension_versions.trusted), or only a
-- superuser can restore them: see the README.
CREATE ROLE warden_restore LOGIN PASSWORD 'change-me-restore';
CREATE DATABASE app_scratch OWNER warden_restore;
