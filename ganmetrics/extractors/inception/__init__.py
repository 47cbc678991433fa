"""The FID Inception-v3 (TF 2015-12-05 graph ported to PyTorch): network, oneDNN layout,
preprocessing, weights, and the extractor that joins them."""
