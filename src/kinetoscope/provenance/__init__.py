"""Provenance: where a video came from (C2PA manifests) and an invisible watermark in its pixels."""
