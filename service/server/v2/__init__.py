"""v2: the Open Inference Protocol (KServe / Triton), JSON and binary tensors."""
