-- The gazetteer the marketplace places listings and searches by: named
-- places with a point each (GeoNames ids). Seeded by V21 from GeoNames
-- (CC BY 4.0). `geography` so distances and radii are metres on the
-- spheroid, not degrees; the GiST index serves ST_DWithin and nearest-city
-- lookups, the lower(name) index the forms' prefix lookups.
CREATE TABLE geo_cities (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    admin_code  text NOT NULL,
    admin_name  text NOT NULL,
    country     text NOT NULL CHECK (char_length(country) = 2),
    population  integer NOT NULL CHECK (population >= 0),
    location    geography(Point, 4326) NOT NULL
);

CREATE INDEX geo_cities_location_idx ON geo_cities USING gist (location);
CREATE INDEX geo_cities_name_prefix_idx ON geo_cities (lower(name) text_pattern_ops, population DESC);
