"""The operator's web console: static files served by the app, no build step, no CDN."""
