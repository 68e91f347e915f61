"""Landing readers, media validation and lake writers."""
