-- PostgreSQL only (no SQLite migration): a post's search document keeps its title apart from its
-- summary, as FTS5's two columns do: title words weigh A, summary words D. Autocomplete matches
-- title words only ('word':*A), ranking weighs a title word 4 times a summary word (ts_rank's
-- weights, bm25(posts_fts, 4.0, 1.0) on SQLite), and a phrase never runs from the title into the
-- summary: `||` places the summary's words right after the title's, so a spacer lexeme '|' (which
-- no query can hold: queries are made of letters and digits) sits between them. One function builds
-- the document, for the trigger and for copy-db.
CREATE FUNCTION post_search_document(title text, summary text) RETURNS tsvector
    LANGUAGE sql STABLE AS $$
    SELECT setweight(to_tsvector('conversation_search', title), 'A')
        || '|:1'::tsvector
        || setweight(to_tsvector('conversation_search', summary), 'D')
$$;

CREATE OR REPLACE FUNCTION posts_fts_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO posts_fts (post_id, document)
        VALUES (NEW.id, post_search_document(NEW.title, NEW.summary))
        ON CONFLICT (post_id) DO UPDATE SET document = excluded.document;
    RETURN NULL;
END $$;

UPDATE posts_fts f SET document = post_search_document(p.title, p.summary) FROM posts p WHERE p.id = f.post_id;
