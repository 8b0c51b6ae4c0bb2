"""Pure record formats (MXNet RecordIO, TFRecord, WebDataset): bytes in, bytes out.

Nothing here knows of the registry; each module is checked against the
format's own fixtures or an independent reader.
"""
