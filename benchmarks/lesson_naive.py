"""The naive baseline: one trial the way the lesson's code runs it.

A fresh Python process per trial, the TensorFlow backend, `model.fit` with Keras
defaults (steps_per_execution=1, validation batch = batch size, progress bar on),
no tracking. It builds the same model in the same order and seeds like the lesson
(`keras.utils.set_random_seed`), so with the same backend its metrics should equal
our runner's. Prints one JSON line: the per-epoch history and the wall time.

Usage: python benchmarks/lesson_naive.py '<TrialConfig as JSON>' DATA_DIR
"""

import json
import math
import sys
import time

started = time.perf_counter()
import keras  # noqa: E402  (import time is part of what a fresh process costs)
import numpy as np  # noqa: E402

from study.data.mnist import load_mnist  # noqa: E402  (the official files; the lesson used keras.datasets)

config = json.loads(sys.argv[1])
mnist = load_mnist(sys.argv[2])
x_train = mnist.x_train.reshape(-1, 784).astype("float32") / 255.0
x_test = mnist.x_test.reshape(-1, 784).astype("float32") / 255.0
y_train, y_test = mnist.y_train.astype("int32"), mnist.y_test.astype("int32")
if config["validation"] == "holdout":
    x_train, x_val, y_train, y_val = x_train[:-10000], x_train[-10000:], y_train[:-10000], y_train[-10000:]
else:
    x_val, y_val = x_test, y_test
if config["train_subset"]:
    x_train, y_train = x_train[:config["train_subset"]], y_train[:config["train_subset"]]

keras.utils.set_random_seed(config["seed"])
initializers = {"normal": lambda: keras.initializers.RandomNormal(mean=0.0, stddev=1.0),
                "xavier": lambda: "glorot_uniform", "he": lambda: "he_normal"}
inputs = keras.Input(shape=(784,))
x = inputs
for i in range(config["hidden_layers"]):
    x = keras.layers.Dense(config["units"], kernel_initializer=initializers[config["init"]]())(x)
    if config["batch_norm"]:
        x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Activation(config["activation"])(x)
    if config["dropout"] > 0:
        x = keras.layers.Dropout(config["dropout"])(x)
outputs = keras.layers.Dense(10, activation="softmax")(x)
model = keras.Model(inputs, outputs)
optimizer = (keras.optimizers.SGD(learning_rate=config["learning_rate"]) if config["optimizer"] == "sgd"
             else keras.optimizers.Adam(learning_rate=config["learning_rate"]))
model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(), metrics=["accuracy"])

callbacks = []
lr, warmup, epochs = config["learning_rate"], config["warmup_epochs"], config["epochs"]
if config["schedule"] == "plateau":
    callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=config["plateau_factor"],
                                                       patience=config["plateau_patience"]))
elif config["schedule"] == "warmup_cosine":
    def lr_schedule(epoch, current):
        if epoch < warmup:
            return epoch / warmup * lr
        return 0.5 * lr * (1 + math.cos(math.pi * (epoch - warmup) / (epochs - warmup)))
    callbacks.append(keras.callbacks.LearningRateScheduler(lr_schedule))

history = model.fit(x_train, y_train, batch_size=config["batch_size"], epochs=epochs,
                    validation_data=(x_val, y_val), callbacks=callbacks)
h = {k: [float(v) for v in vals] for k, vals in history.history.items()}
best = int(np.nanargmin(h["val_loss"])) if not all(map(math.isnan, h["val_loss"])) else None
print(json.dumps({"history": h, "best_epoch": best,
                  "final_val_accuracy": h["val_accuracy"][best] if best is not None else None,
                  "in_process_s": time.perf_counter() - started}))
