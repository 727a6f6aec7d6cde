"""Small helpers shared by every layer: C-library text numbers (ctext), zerotier-one's
JSON string rules (jsontext) and the crash-safe file writer (atomic).

``ctext`` and ``jsontext`` are pure and may be used by the I/O-free core; ``atomic``
touches the file system and is for the service, the controller and the CLI only.
"""
