"""Paper-table reproductions: incremental, resumable, one stored result per run."""
