"""What people look at: views of built datasets (a dataset card, a diff of two builds, a
duplicate and leak audit). Each view takes the engine's narrow `engine.project.Project`
(what `api.Registry` is), reads the store and the file tables, and returns a value (a
JSON-able dict, a page); it never prints: the CLI formats what it returns. Reports sit in
the jobs tier: they may import the engine and below, never the API or the CLI.
"""
