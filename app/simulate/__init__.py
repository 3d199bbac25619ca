"""`python -m app simulate`: guards' phones, incidents and the police CAD against a live server."""
