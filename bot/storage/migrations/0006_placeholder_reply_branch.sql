-- Placeholder so that branch 'reply' (migration 0007) runs on its own: migrations must be numbered 1..N.
-- The merge keeps the other branches' 0006 instead and deletes this file.
SELECT 1;
