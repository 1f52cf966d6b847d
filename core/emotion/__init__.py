"""Emotion classification: the model card, the classifier (torch or ONNX Runtime), our architectures,
the one crop -> tensor preprocessing path, the emotion vocabulary and the classification metrics."""
