"""Feature extractors: one folder or file each (the FID Inception in ``inception/``), a protocol
in ``base.py`` and a registry in ``registry.py``."""
