-- Paused queues: a row per queue that ops paused, with who, why and when.
-- Workers claim nothing from a paused queue; resuming deletes the row.
CREATE TABLE job_queue_controls (
    queue      text PRIMARY KEY CHECK (queue IN ('HIGH', 'DEFAULT', 'LOW', 'BULK', 'SCREENSHOT')),
    paused_by  text NOT NULL,
    reason     text NOT NULL,
    paused_at  timestamptz NOT NULL DEFAULT now()
);
