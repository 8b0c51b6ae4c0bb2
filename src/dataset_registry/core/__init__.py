"""The core every layer shares: content hashing and derivation keys (`keys`), stat
signatures (`statsig`), object storage through fsspec (`remote`, with per-protocol facts in
`protocols`), the process pool context (`processes`), atomic file writes (`atomic`) and
progress reporting (`progress`). It imports no other layer of the package but `errors`."""
