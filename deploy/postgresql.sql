-- PostgreSQL for Nattillsyn: one role and one database for all nodes. Run as postgres:
--   sudo -u postgres psql -v password="'<a long random password>'" -v nodes=2 \
--        -v per_node=20 -f deploy/postgresql.sql
-- per_node = SUPERVISION_DATABASE_POOL_SIZE + SUPERVISION_DATABASE_MAX_OVERFLOW (10 + 10
-- in deploy/service/nattillsyn.env); each node's pool may hold that many connections,
-- plus two of its own (the leader lock, and the one that listens to the other nodes),
-- and the CLI (migrate, backup, user add) needs a few more. The role's limit keeps a
-- runaway node from taking the server's max_connections (default 100) from everyone.
\set ON_ERROR_STOP on
SELECT :nodes * (:per_node + 2) + 5 AS connection_limit \gset
CREATE ROLE nattillsyn LOGIN PASSWORD :password CONNECTION LIMIT :connection_limit;
CREATE DATABASE nattillsyn OWNER nattillsyn ENCODING 'UTF8' TEMPLATE template0
    CONNECTION LIMIT :connection_limit;
-- nobody else may connect or create anything in it
REVOKE ALL ON DATABASE nattillsyn FROM PUBLIC;
\connect nattillsyn
REVOKE ALL ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO nattillsyn;
-- an idle transaction holding locks must not stall the night
ALTER ROLE nattillsyn SET idle_in_transaction_session_timeout = '60s';
