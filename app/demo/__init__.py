"""The Tianjin demo city: precincts, units, companies and guards for `seed-demo`."""
