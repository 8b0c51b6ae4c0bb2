"""What people look at: views of datasets built from the engine's records, never printed
here (each returns data; the CLI formats it, the card page renders it). `audit`: the leak
audit of a source or a built dataset (exact and near copies across splits, class balance,
undecodable images). They take the engine's narrow `Project` (what `api.Registry` is) and
may import the engine and the layers below it, never the API or the CLI.
"""
