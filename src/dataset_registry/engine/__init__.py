"""The engine: from a name to a committed artifact, in four rooms.

- the key side: names to keys (`keys`: sources set on this machine or known from the
  lock, `lockfile`, `locking`; `keycache` answers a built name without loading manifests),
- the builder (`build`: stage, plan, run, finish, publish),
- substituters (`substituters`: copying an artifact between stores; `transfers`: caches,
  `pull`, `push`),
- maintenance (`gc` with its roots, `catalog_sync`: verify, repair, catalog rebuild).

`api.Registry` wires them; nothing here prints.
"""
