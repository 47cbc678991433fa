"""Files on disk: statistics files, the statistics cache, atomic writes, downloads, hashes and paths.
Nothing here knows an extractor or a source class."""
