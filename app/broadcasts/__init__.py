"""Area broadcasts: one message to every on-duty guard inside a circle until it expires."""
