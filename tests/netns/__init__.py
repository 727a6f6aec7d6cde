"""Tests in network namespaces (root only) and the namespace helper they share."""
