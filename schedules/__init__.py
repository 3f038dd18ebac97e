"""Integer kernel compute definitions and their schedules."""
