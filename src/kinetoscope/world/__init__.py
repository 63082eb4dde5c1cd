"""The physics world: procedural, captioned clips with exact ground truth, and their judge."""
