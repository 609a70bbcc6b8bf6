-- PostGIS: marketplace radius search and geographic queries need geography
-- types and spatial indexes. pgcrypto is not needed: gen_random_uuid() is core
-- since Postgres 13.
CREATE EXTENSION IF NOT EXISTS postgis;
