-- News (issue #7): the feeds anonymous visitors read.

-- The default set every anonymous visitor reads. Breaking news refreshes
-- every 5 minutes, the rest every 15. Ops change the set in SQL for now.
INSERT INTO feeds (url, title, refresh_interval_seconds, is_default) VALUES
    ('https://feeds.bbci.co.uk/news/world/rss.xml', 'BBC News — World', 300, true),
    ('https://feeds.npr.org/1001/rss.xml', 'NPR News', 300, true),
    ('https://www.theguardian.com/world/rss', 'The Guardian — World', 900, true),
    ('https://hnrss.org/frontpage', 'Hacker News', 900, true);
