"""DINOv2 ViT-L/14 (facebookresearch/dinov2's ``dinov2_vitl14``): network, preprocessing, weights,
and the extractor that joins them."""
