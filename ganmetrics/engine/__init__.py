"""Running sources through an extractor: the one pass (``runner``), decoding (``loader``), the
device and threads (``runtime``), and resolving each side of a comparison (``sides``)."""
