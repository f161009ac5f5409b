"""colearn_keras.utils' helper for ``tf.data`` image pipelines."""

from __future__ import annotations

from typing import Any

import tensorflow as tf


def normalize_img(image: Any, label: Any) -> tuple[Any, Any]:
    """``(image, label)`` with the image's 0-255 pixels as float32 in [0, 1] (for
    ``dataset.map``); the label unchanged."""
    return tf.cast(image, tf.float32) / 255.0, label
