"""The web page at `/`: static files (vanilla JS, no build step) that talk to the public API only."""
