-- The embedded blob store keeps an object's metadata as the bucket does
-- (`x-amz-meta-*`): name → value, e.g. a screenshot's source URL and its
-- retention hint. Existing blobs have none.
ALTER TABLE blobs ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}';
