"""gpuplan: what will a BERT fine-tune cost on each GPU, fp32 vs mixed precision?"""

__version__ = "0.1.0"
