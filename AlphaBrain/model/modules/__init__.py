"""Small building blocks shared by policies: image and text encoders, attention, action heads, augmentation.

Modules build on `AlphaBrain.model.core` only (never on `policies`).
"""
