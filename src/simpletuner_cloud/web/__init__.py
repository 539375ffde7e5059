"""The web UI: the Cloud tab. Pages are thin HTML shells; every datum comes from the JSON API, so the
UI, the CLI and scripts see the same answers and the same security."""
