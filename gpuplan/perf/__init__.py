"""The performance model: pure Python, no TensorFlow. FLOPs, bytes and memory per step, and step time on a GPU."""
