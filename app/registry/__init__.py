"""The registry: security companies, guards, police stations and units."""
