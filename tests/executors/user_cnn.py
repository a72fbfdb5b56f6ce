"""A user's model for the conformance suite: convolution, batch norm and dropout, built from the trial's
hyperparameters (`model: tests.executors.user_cnn:build`), the way examples/small_cnn.py is."""

import keras
from keras import layers


def build(hp, input_shape, num_classes):
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(hp.filters, hp.kernel_size, padding="same")(inputs)
    if hp.batch_norm:
        x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.Activation(hp.activation)(x)
    x = layers.Flatten()(layers.MaxPooling2D(2)(x))
    if hp.dropout > 0:
        x = layers.Dropout(hp.dropout)(x)
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x))
