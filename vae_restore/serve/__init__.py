"""The restore service: an HTTP API and a web page over one onnxruntime session (`vae-restore serve`).

Imports no torch: it runs in the `[serve]` install (`[infer]` + FastAPI and uvicorn).
"""
