"""Domain plugins shipped in the tree: each registers through the same entry points an
outside plugin uses (see plugins.py); the core imports none of them."""
