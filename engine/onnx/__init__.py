"""The ONNX path: export the denoiser with steering offsets as graph inputs, run it in onnxruntime.

`spec` (the contract, torch-free) <- `seam` (where upstream calls the
transformer) <- `runtime` (onnxruntime denoiser) <- `parity` (torch vs ONNX)
<- `export` (writes the graph, then checks parity).
"""
