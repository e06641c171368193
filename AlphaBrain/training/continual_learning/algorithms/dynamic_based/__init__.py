"""Methods that change the architecture per task (planned)."""
