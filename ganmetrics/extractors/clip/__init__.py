"""OpenAI CLIP image towers: CMMD's ViT-L/14@336 and clean-fid's ViT-B/32 (``extractor.py``),
their references' crops and resizes (``preprocess.py``), and a reader of OpenAI's TorchScript
weight files that runs none of their code (``torchscript.py``)."""
