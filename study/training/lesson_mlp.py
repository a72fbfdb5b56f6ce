"""The lesson's MLP for a TrialConfig (Keras 3 Functional API): the built-in model.

Dense -> [BatchNormalization] -> activation -> [Dropout], `hidden_layers` times,
then a 10-way softmax. Hidden initialisers follow the lesson exactly: `normal`
is a plain N(0, 1) (not Keras' stddev-0.05 default), `xavier` is glorot_uniform,
`he` is he_normal; the output layer is always glorot_uniform.
"""

from __future__ import annotations

from study.config import TrialConfig

INPUT_DIM = 28 * 28
CLASSES = 10


def hidden_initializer(name: str, seed: int | None = None):
    """The initializer object the model builder uses (also sampled by the report)."""
    import keras

    if name == "normal":
        return keras.initializers.RandomNormal(mean=0.0, stddev=1.0, seed=seed)
    if name == "xavier":
        return keras.initializers.GlorotUniform(seed=seed)
    if name == "he":
        return keras.initializers.HeNormal(seed=seed)
    raise ValueError(f"init must be one of normal, xavier, he; got {name!r}")


def build_model(config: TrialConfig, input_dim: int = INPUT_DIM, classes: int = CLASSES):
    """The MLP on flattened inputs (`input_dim` values: MNIST's 784 pixels), `classes`-way softmax."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(input_dim,), name="pixels")
    x = inputs
    for i in range(config.hidden_layers):
        x = layers.Dense(config.units, kernel_initializer=hidden_initializer(config.init), name=f"dense_{i}")(x)
        if config.batch_norm:
            x = layers.BatchNormalization(name=f"batch_norm_{i}")(x)
        x = layers.Activation(config.activation, name=f"{config.activation}_{i}")(x)
        if config.dropout > 0:
            x = layers.Dropout(config.dropout, name=f"dropout_{i}")(x)
    outputs = layers.Dense(classes, activation="softmax", kernel_initializer="glorot_uniform", name="softmax")(x)
    return keras.Model(inputs, outputs, name="mlp")
