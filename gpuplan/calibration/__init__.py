"""The calibration fine-tune. The ONLY package that imports TensorFlow, transformers or datasets.

Importing this package is cheap: TensorFlow is imported inside the functions that train.
"""
