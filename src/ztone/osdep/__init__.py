"""Virtual Ethernet ports and routes, one package per OS (DESIGN.md, OS backends)."""
