"""The engine: from a name to a committed artifact, in four rooms.

- the key side: names to keys (`keys`: sources set on this machine or known from the
  lock; `lockfile`, `locking`; `sources`: setting and checking a source here; `keycache`
  answers a built name without loading manifests),
- the builder (`build`: stage, plan, run, finish, publish, and `--repair`; `inputs`: a
  built artifact as the images another build reads),
- substituters (`substituters`: copying an artifact between stores; `transfers`: caches,
  `pull`, `push`),
- maintenance (`gc` with its roots, `verify`, `catalog_sync`: the catalog kept in step
  and rebuilt; `lineage`).

Each takes the narrow `project.Project` (what `api.Registry` is); nothing here prints.
"""
