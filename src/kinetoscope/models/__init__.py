"""Neural networks: the causal video VAE (`vae`), its blocks (`layers`) and checkpoint I/O
(`pretrained`)."""
