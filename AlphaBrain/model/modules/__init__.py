"""Small building blocks shared by frameworks: image encoders, text encoders, action heads, augmentation."""
