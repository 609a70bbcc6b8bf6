-- The marketplace's category tree. A listing sits in one category; searches
-- filter by a category and everything under it. A category with a fee
-- (cents) is paid: its listings publish only once paid (payments arrive
-- with issue #19; until then they stay drafts with a clear message).
-- `slug` is what URLs and the API use; `position` orders siblings.
CREATE TABLE marketplace_categories (
    id         bigint PRIMARY KEY,
    parent_id  bigint REFERENCES marketplace_categories (id),
    slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    name       text NOT NULL,
    fee_cents  integer NOT NULL DEFAULT 0 CHECK (fee_cents >= 0),
    position   integer NOT NULL DEFAULT 0
);

CREATE INDEX marketplace_categories_parent_idx ON marketplace_categories (parent_id);

INSERT INTO marketplace_categories (id, parent_id, slug, name, fee_cents, position) VALUES
    (1,  NULL, 'for-sale',        'For sale',           0,    1),
    (11, 1,    'furniture',       'Furniture',          0,    1),
    (12, 1,    'electronics',     'Electronics',        0,    2),
    (13, 1,    'appliances',      'Appliances',         0,    3),
    (14, 1,    'clothing',        'Clothing',           0,    4),
    (15, 1,    'sporting-goods',  'Sporting goods',     0,    5),
    (16, 1,    'tools',           'Tools',              0,    6),
    (17, 1,    'vehicles',        'Cars and trucks',    500,  7),
    (18, 1,    'free-stuff',      'Free stuff',         0,    8),
    (2,  NULL, 'housing',         'Housing',            0,    2),
    (21, 2,    'rentals',         'Apartments and houses for rent', 1000, 1),
    (22, 2,    'rooms',           'Rooms and shares',   0,    2),
    (23, 2,    'real-estate',     'Real estate for sale', 2500, 3),
    (3,  NULL, 'jobs',            'Jobs',               2500, 3),
    (31, 3,    'full-time',       'Full time',          2500, 1),
    (32, 3,    'part-time',       'Part time',          2500, 2),
    (4,  NULL, 'services',        'Services',           0,    4),
    (41, 4,    'home-services',   'Home and garden',    0,    1),
    (42, 4,    'lessons',         'Lessons and tutoring', 0,  2),
    (5,  NULL, 'community',       'Community',          0,    5),
    (51, 5,    'events',          'Events',             0,    1),
    (52, 5,    'lost-and-found',  'Lost and found',     0,    2),
    (53, 5,    'volunteers',      'Volunteers',         0,    3);
