"""carexpert-tui: the Textual app over the carexpert core (presents and steers; no ML logic)."""
