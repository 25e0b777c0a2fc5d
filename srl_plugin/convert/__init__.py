"""`srl-convert`: raw datasets -> the webdataset shards `srl-train` reads (docs/DATA.md).

Subcommands: `ytvis2021` (the official YouTube-VIS 2021 preparation), `videos` (unlabelled training shards
from a folder of video files or frame folders). Both write shard by shard, atomically, so an interrupted
conversion resumes where it stopped when run again with the same arguments.
"""
