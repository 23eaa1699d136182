"""Rent a GPU on EC2, run `gpuplan calibrate` there, bring the result back, and always terminate the instance.

The only package that imports boto3. Importing it is cheap: boto3 is imported inside the functions that call AWS,
so `gpuplan --help` and `gpuplan estimate` never pay for it.
"""
