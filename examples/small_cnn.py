"""A small CNN for 8x8 digits: the model a user brings, in the form the framework calls.

`model: examples.small_cnn:build` in a spec (run from the project's root, or put this
directory's parent on PYTHONPATH). The framework calls `build` once per trial, right
after seeding, and compiles the model itself (optimizer, loss, metrics, schedules).
"""

import keras
from keras import layers


def build(hp, input_shape, num_classes):
    """Two conv blocks, then a softmax over `num_classes`.

    Your own hyperparameters (declared in the spec): hp.filters, hp.kernel_size.
    Built-in fields it also reads: hp.batch_norm, hp.activation, hp.dropout.
    """
    inputs = keras.Input(shape=input_shape)
    x = inputs
    for block, filters in enumerate((hp.filters, 2 * hp.filters)):
        x = layers.Conv2D(filters, hp.kernel_size, padding="same", name=f"conv_{block}")(x)
        if hp.batch_norm:
            x = layers.BatchNormalization(momentum=0.9, name=f"batch_norm_{block}")(x)  # few steps: faster statistics
        x = layers.Activation(hp.activation, name=f"{hp.activation}_{block}")(x)
        x = layers.MaxPooling2D(2, name=f"pool_{block}")(x)
    x = layers.Flatten()(x)
    if hp.dropout > 0:
        x = layers.Dropout(hp.dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="softmax")(x)
    return keras.Model(inputs, outputs, name="small_cnn")
