"""Small shared utilities: user-facing errors and atomic file writes."""
