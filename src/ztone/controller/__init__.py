"""The embedded network controller (PROTOCOL-NETWORK-SERVICE part B)."""
