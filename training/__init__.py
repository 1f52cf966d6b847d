"""Data loading, augmentation, training and evaluation scripts that produce `weights/`."""
