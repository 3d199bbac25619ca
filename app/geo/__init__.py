"""Geometry: distances in metres, jurisdiction zones, the live index of guard positions."""
