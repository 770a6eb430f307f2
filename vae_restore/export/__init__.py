"""ONNX export: graph modules and the exporter (`onnx_export`), the parity gate (`validate`), the manifest
(`manifest`, torch-free) and the export pipeline that ties them together (`pipeline`).

This package imports nothing heavy itself, so `vae_restore.inference` can read manifests without torch.
"""
